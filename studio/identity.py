"""Who is annotating: the Hugging Face user, the logged-in user, or a typed name."""

from __future__ import annotations

import hmac
import logging
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable

from studio.config import IdentityMode
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


class LoginGuard:
    """Gradio's ``auth`` callable for password log-in: checks passwords in constant time,
    locks a name out after repeated failures, throttles failures from everyone together, and
    logs every failure and lockout (the name only, never a password).

    Args:
        users: ``(name, password)`` pairs.
        max_failures: failures of one name within ``window_s`` that lock it for ``lockout_s``.
        max_global: failures of all names together within ``window_s`` that refuse every
            attempt for ``lockout_s`` (a guessing run over many names).
        clock: seconds, monotonic (a test hands in a fake one).
    """

    def __init__(
        self,
        users: tuple[tuple[str, str], ...],
        *,
        max_failures: int = 5,
        max_global: int = 30,
        window_s: float = 60.0,
        lockout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._users = dict(users)
        self.max_failures, self.max_global = max_failures, max_global
        self.window_s, self.lockout_s = window_s, lockout_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._locked: dict[str, float] = {}
        self._lock = threading.Lock()

    def _recent(self, times: deque[float], now: float) -> int:
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return len(times)

    def _fail(self, name: str, now: float) -> None:
        times = self._failures.setdefault(name, deque())
        times.append(now)
        self._all.append(now)
        count = self._recent(times, now)
        log.warning("login failed for user %r (%d in the last minute)", name[:40], count)
        if count >= self.max_failures:
            self._locked[name] = now + self.lockout_s
            log.warning("login locked for user %r for %.0f s", name[:40], self.lockout_s)
        if self._recent(self._all, now) >= self.max_global:
            self._locked[""] = now + self.lockout_s
            log.warning("logins refused for %.0f s: too many failures overall", self.lockout_s)

    def __call__(self, username: str, password: str) -> bool:
        name = str(username or "")[:MAX_NAME].strip()
        with self._lock:
            now = self._clock()
            for key in (name, ""):
                if self._locked.get(key, 0.0) > now:
                    log.warning("login refused for user %r: locked after failures", name[:40])
                    return False
            expected = self._users.get(name)
            given = str(password or "").encode()
            ok = expected is not None and hmac.compare_digest(given, expected.encode())
            if not ok:
                self._fail(name, now)
            return ok
