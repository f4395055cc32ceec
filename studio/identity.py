"""Who is annotating: the Hugging Face user, the logged-in user, or a typed name."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from contextvars import ContextVar
from typing import Any

from studio.config import IdentityMode, TrustedProxies
from studio.errors import StudioError

MAX_NAME = 100
log = logging.getLogger("studio")


def clean_name(raw: str | None) -> str:
    """A typed annotator name, trimmed.

    Raises:
        StudioError: empty, too long, or with control characters.
    """
    name = (raw or "").strip()
    if not name:
        raise StudioError(
            "Type your name in the 'Annotator' field first: it is stored with your work."
        )
    if len(name) > MAX_NAME:
        raise StudioError(f"Shorten your annotator name to at most {MAX_NAME} characters.")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise StudioError("The annotator name may only hold printable characters.")
    return name


def resolve_annotator(
    mode: IdentityMode,
    *,
    typed: str | None,
    login_user: str | None,
    hub_user: str | None,
) -> str:
    """The annotator's name for ``mode``.

    Args:
        mode: ``oauth`` (the Hugging Face user), ``password`` (the Gradio log-in) or ``name``
            (the typed name).
        typed: the name field's value.
        login_user: ``gr.Request.username`` (password log-in).
        hub_user: the Hugging Face user name from ``gr.OAuthProfile``.

    Raises:
        StudioError: the user is not identified yet, with what to do.
    """
    if mode == "oauth":
        if not hub_user:
            raise StudioError("Sign in with Hugging Face (button at the top of the page) first.")
        return clean_name(hub_user)
    if mode == "password":
        if not login_user:
            raise StudioError("Your session has no log-in; reload the page and log in again.")
        return clean_name(login_user)
    return clean_name(typed)


SERVER_PROXY_HEADERS_OFF = {"FORWARDED_ALLOW_IPS": ""}
"""Environment for Gradio's web server (uvicorn) that switches its own ``X-Forwarded-For``
handling off: by default it believes the header from any loopback peer, so a local client
could pick its address. :func:`client_address` reads the header instead, for the proxies of
``ADASAM_TRUSTED_PROXIES`` only (``app.py`` applies this before launching)."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_hinted: set[str] = set()


def switch_off_server_proxy_headers(environ: MutableMapping[str, str]) -> str | None:
    """Apply :data:`SERVER_PROXY_HEADERS_OFF` to ``environ`` (``os.environ`` in ``app.py``);
    the warning to log when that overrode a value someone set, else None."""
    overridden = sorted(k for k, v in SERVER_PROXY_HEADERS_OFF.items() if environ.get(k, v) != v)
    environ.update(SERVER_PROXY_HEADERS_OFF)
    if not overridden:
        return None
    return (
        f"{', '.join(overridden)} is ignored: the studio reads X-Forwarded-For itself, from the "
        "proxies listed in ADASAM_TRUSTED_PROXIES"
    )


def parse_ip(text: str) -> IpAddress | None:
    """An address of an ``X-Forwarded-For`` entry (``1.2.3.4``, ``1.2.3.4:80``, ``::1``,
    ``[::1]:80``), or None when the entry is not an address."""
    entry = text.strip()
    if entry.startswith("[") and "]" in entry:
        entry = entry[1 : entry.index("]")]
    elif entry.count(":") == 1:
        entry = entry.split(":")[0]
    try:
        return ipaddress.ip_address(entry)
    except ValueError:
        return None


def _trusted(address: IpAddress | None, trusted: TrustedProxies) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: TrustedProxies
) -> str | None:
    """The client's address: the direct ``peer``, unless it is a trusted proxy.

    Behind trusted proxies, each appends the address it was reached from to
    ``X-Forwarded-For`` (``forwarded_for``: the header's values, in order), so the client is
    the right-most entry that is not itself a trusted proxy; the entries left of it are the
    client's to write and never read. A malformed entry where an address should be leaves the
    peer (the nearest proxy). An untrusted peer's header is ignored: a client cannot pick its
    address.
    """
    if not _trusted(parse_ip(peer or ""), trusted):
        if peer is not None and any(v.strip() for v in forwarded_for):
            _hint_untrusted_proxy(peer)
        return peer
    entries = [e for value in forwarded_for for e in value.split(",")]
    for entry in reversed(entries):
        address = parse_ip(entry)
        if address is None:
            return peer
        if not _trusted(address, trusted):
            return str(address)
    first = parse_ip(entries[0]) if entries else None
    return peer if first is None else str(first)  # every hop trusted: where it started


def _hint_untrusted_proxy(peer: str) -> None:
    """Log once per process that ``peer`` forwards requests but is not trusted (the first
    sign of a reverse proxy missing from ``ADASAM_TRUSTED_PROXIES``)."""
    if _hinted:
        return
    _hinted.add(peer)
    log.warning(
        "requests from %s carry X-Forwarded-For, which is ignored: the address is not in "
        "ADASAM_TRUSTED_PROXIES (add it when it is your reverse proxy)",
        peer,
    )


def request_address(request: Any, trusted: TrustedProxies) -> str | None:
    """:func:`client_address` of a ``gr.Request`` (None without one, or without a client)."""
    if request is None:
        return None
    client = getattr(request, "client", None)
    peer = getattr(client, "host", None)
    headers = getattr(request, "headers", None) or {}
    if hasattr(headers, "getlist"):
        values = list(headers.getlist("x-forwarded-for"))
    else:  # a queued request's headers come as a plain dict
        values = [str(v) for k, v in dict(headers).items() if str(k).lower() == "x-forwarded-for"]
    return client_address(None if peer is None else str(peer), values, trusted)


CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("adasam_client_address", default=None)
"""The client address of the HTTP request being served (set by :class:`ClientAddress`)."""


class ClientAddress:
    """ASGI middleware: puts each HTTP request's client address (:func:`client_address`,
    with ``trusted_proxies``) in :data:`CLIENT_ADDRESS`, so :class:`LoginGuard` (which Gradio
    calls with the user name and password only) can count failures per address."""

    def __init__(
        self, app: Callable[..., Awaitable[None]], trusted_proxies: TrustedProxies = ()
    ) -> None:
        self.app = app
        self.trusted_proxies = trusted_proxies

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        forwarded = [
            value.decode("latin-1")
            for name, value in scope.get("headers", [])
            if name.lower() == b"x-forwarded-for"
        ]
        address = client_address(
            str(client[0]) if client else None, forwarded, self.trusted_proxies
        )
        token = CLIENT_ADDRESS.set(address)
        try:
            await self.app(scope, receive, send)
        finally:
            CLIENT_ADDRESS.reset(token)


class LoginGuard:
    """Gradio's ``auth`` callable for password log-in: checks passwords in constant time,
    locks one account name from one client address after repeated failures, locks a client
    address that fails over many names, and logs every failure and lockout (the name and
    address only, never a password).

    Nothing is global: an attacker's failures lock the attacker's own address (and the names
    it tried, from that address) but never another user's log-in from elsewhere. Without a
    client address (no :class:`ClientAddress` middleware) failures are counted per name.

    Args:
        users: ``(name, password)`` pairs.
        max_failures: failures of one name from one address within ``window_s`` that lock
            that name from that address for ``lockout_s``.
        max_per_address: failures of all names from one address within ``window_s`` that lock
            the address for ``lockout_s`` (a guessing run over many names).
        clock: seconds, monotonic (a test hands in a fake one).
    """

    MAX_TRACKED = 4096
    """Entries kept before the expired ones are pruned (bounds memory under a spray)."""

    def __init__(
        self,
        users: tuple[tuple[str, str], ...],
        *,
        max_failures: int = 5,
        max_per_address: int = 30,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = dict(users)
        self.max_failures, self.max_per_address = max_failures, max_per_address
        self.window_s, self.lockout_s = window_s, lockout_s
        self._clock = clock
        self._failures: dict[tuple[str, str | None], deque[float]] = {}
        self._by_address: dict[str, deque[float]] = {}
        self._locked: dict[tuple[str, str | None] | str, float] = {}
        self._lock = threading.Lock()

    def _recent(self, times: deque[float], now: float) -> int:
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return len(times)

    def _prune(self, now: float) -> None:
        for table in (self._failures, self._by_address):
            if len(table) > self.MAX_TRACKED:
                for key in [k for k, times in table.items() if not self._recent(times, now)]:
                    del table[key]  # type: ignore[arg-type]
        if len(self._locked) > self.MAX_TRACKED:
            for key in [k for k, until in self._locked.items() if until <= now]:
                del self._locked[key]

    def _fail(self, name: str, address: str | None, now: float) -> None:
        where = address or "an unknown address"
        times = self._failures.setdefault((name, address), deque())
        times.append(now)
        count = self._recent(times, now)
        log.warning(
            "login failed for user %r from %s (%d in the last minute)", name[:40], where, count
        )
        if count >= self.max_failures:
            self._locked[(name, address)] = now + self.lockout_s
            log.warning(
                "login locked for user %r from %s for %.0f s", name[:40], where, self.lockout_s
            )
        if address is not None:
            spray = self._by_address.setdefault(address, deque())
            spray.append(now)
            if self._recent(spray, now) >= self.max_per_address:
                self._locked[address] = now + self.lockout_s
                log.warning(
                    "logins from %s refused for %.0f s: too many failures over several names",
                    address,
                    self.lockout_s,
                )
        self._prune(now)

    def attempt(self, username: str, password: str, address: str | None) -> bool:
        """One log-in attempt from ``address`` (None: unknown)."""
        name = str(username or "")[:MAX_NAME].strip()
        with self._lock:
            now = self._clock()
            keys: tuple[tuple[str, str | None] | str, ...] = (
                ((name, address),) if address is None else ((name, address), address)
            )
            for key in keys:
                if self._locked.get(key, 0.0) > now:
                    log.warning(
                        "login refused for user %r from %s: locked after failures",
                        name[:40],
                        address or "an unknown address",
                    )
                    return False
            expected = self._users.get(name)
            given = str(password or "").encode()
            same = hmac.compare_digest(given, (expected or "").encode())  # unknown: same time
            ok = expected is not None and same
            if not ok:
                self._fail(name, address, now)
            return ok

    def __call__(self, username: str, password: str) -> bool:
        """Gradio's ``auth`` call: :meth:`attempt` from the request's client address."""
        return self.attempt(username, password, CLIENT_ADDRESS.get())
