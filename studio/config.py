"""Settings of the studio's web server, from the environment snapshot taken at start-up.

Values are parsed with :mod:`adasam.settings`' helpers (:func:`~adasam.settings.flag`,
:func:`~adasam.settings.positive_int`), so every variable of the project gives the same error
for the same kind of mistake.

The ML settings (data directory, device, bundle, database, pixel limit) are
:class:`adasam.settings.Settings`; these are the studio's own:

- ``ADASAM_HOST`` and ``ADASAM_PORT`` (default ``GRADIO_SERVER_PORT`` or 7860): where the
  server listens. The host defaults to ``127.0.0.1`` (this machine only); ``GRADIO_SERVER_NAME``
  is used when set, and a Hugging Face Space (``SPACE_ID``) listens on ``0.0.0.0``. The
  Dockerfile sets ``ADASAM_HOST=0.0.0.0``. A server reachable from other machines without an
  identity provider (``name`` identity) logs a loud warning at start-up: anyone who reaches it
  can submit under any name.
- ``ADASAM_IDENTITY``: how the annotator is known. ``auto`` (default) picks ``oauth`` on a
  Hugging Face Space with OAuth enabled (``SPACE_ID`` and ``OAUTH_CLIENT_ID`` set, and
  ``authlib`` + ``itsdangerous`` installed), ``password`` when ``ADASAM_USERS`` is set, else
  ``name``.

  - ``oauth``: "Sign in with Hugging Face" (``gr.LoginButton``); the Hub user name is stored.
  - ``password``: the log-in page of Gradio, users from ``ADASAM_USERS`` = ``alice:pw,bob:pw``.
  - ``name``: a name field on the page (``ADASAM_ANNOTATOR`` pre-fills it).
- ``ADASAM_ADMINS``: comma-separated user names with the admin role (oauth/password identity):
  only they see statistics per annotator; everyone else sees totals only. With ``name``
  identity nobody is admin unless the server listens on this machine only.
- ``ADASAM_TRUSTED_PROXIES`` (default empty: none): comma-separated addresses or networks
  (``10.0.0.5``, ``10.0.0.0/8``, ``::1``) of the reverse proxies in front of the studio. A
  request from one of them is attributed to the right-most ``X-Forwarded-For`` entry that is
  not itself a trusted proxy (:func:`studio.identity.client_address`); any other request to
  its direct peer, its header ignored. The client address keys the log-in lockout and the
  worklist bound per address. ``FORWARDED_ALLOW_IPS`` (the web server's own setting) is
  overridden at start-up, with a warning when it was set.
- ``ADASAM_LEASES_PER_ADDRESS`` (default 4): with the ``name`` identity, at most this many
  typed names may hold a worklist case taken from one client address at a time
  (:mod:`studio.address_leases`; in memory, per process). Each name holds one case at most, and
  log-in identities (``oauth``, ``password``) cannot make names up, so they are not bounded per
  address. Raise it for a team behind one address (NAT, or an untrusted proxy).
- ``ADASAM_MAX_UPLOAD_MB`` (default 200): largest accepted upload; bigger files are refused by
  the server before they are stored.
- ``ADASAM_MODEL_CONCURRENCY`` (default 1): model calls (pipeline runs, clicks, volume
  segmentation and propagation, the API's predict/refine) run at most this many at a time, all
  users and tabs together, in one Gradio queue; that queue is the only serialisation (the
  predictors run concurrent calls in parallel). A propagation holds one slot while it runs.
- ``ADASAM_SEED_WORKLIST`` (default ``1``): on first start, put the example cases in the
  worklist when the database holds no slice yet.
- ``ADASAM_AUXOL`` (default ``1``): the online specialist (AuxOL) learns from each submission
  and the page shows its fused mask beside SAM's; ``0`` switches it off.
- ``ADASAM_REFINE_GUARD`` (default ``1``): keep the previous mask when a refinement click
  collapses it (see :mod:`adasam.refine_guard`); ``0`` shows SAM's raw answer to every click.
- ``ADASAM_MODEL_PULL_SECONDS`` (default 60): with ``ADASAM_MODEL_REPO`` set, how often the
  studio looks for a newly activated model version there (:mod:`studio.model_pull`).
"""

from __future__ import annotations

import importlib.util
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from adasam.errors import ConfigError
from adasam.settings import flag, positive_int

IdentityMode = Literal["oauth", "password", "name"]
TrustedProxies = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
IDENTITY_MODES: tuple[str, ...] = ("auto", "oauth", "password", "name")


def _host(env: Mapping[str, str]) -> str:
    """``ADASAM_HOST``, else ``GRADIO_SERVER_NAME``, else ``0.0.0.0`` on a Space, else
    ``127.0.0.1``."""
    for name in ("ADASAM_HOST", "GRADIO_SERVER_NAME"):
        value = env.get(name, "").strip()
        if value:
            return value
    return "0.0.0.0" if env.get("SPACE_ID", "").strip() else "127.0.0.1"


def oauth_available() -> bool:
    """Whether Gradio's OAuth extra (``authlib``, ``itsdangerous``) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("authlib", "itsdangerous"))


def parse_users(raw: str) -> tuple[tuple[str, str], ...]:
    """``"alice:pw1,bob:pw2"`` → ``(("alice", "pw1"), ("bob", "pw2"))``.

    Raises:
        ConfigError: an entry without ``:``, an empty name or password, or a repeated name.
    """
    users: list[tuple[str, str]] = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        name, sep, password = entry.partition(":")
        if not sep or not name.strip() or not password:
            raise ConfigError(
                f"ADASAM_USERS entry {entry.split(':')[0]!r}… must be written name:password"
            )
        users.append((name.strip(), password))
    names = [n for n, _ in users]
    if len(set(names)) != len(names):
        raise ConfigError("ADASAM_USERS names a user twice")
    return tuple(users)


def parse_trusted_proxies(raw: str) -> TrustedProxies:
    """``"10.0.0.5, 172.16.0.0/12"`` → the networks (a bare address is a one-address network).

    Raises:
        ConfigError: an entry that is not an IP address or network.
    """
    networks = []
    for entry in (e.strip() for e in raw.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(
                f"ADASAM_TRUSTED_PROXIES entry {entry[:60]!r} is not an IP address or network "
                "(write e.g. 10.0.0.5 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class StudioSettings:
    """The web server's settings (see the module docstring for the variables)."""

    host: str = "127.0.0.1"
    port: int = 7860
    identity: IdentityMode = "name"
    users: tuple[tuple[str, str], ...] = ()
    default_annotator: str = ""
    max_upload_mb: int = 200
    model_concurrency: int = 1
    seed_worklist: bool = True
    auxol: bool = True
    refine_guard: bool = True
    model_pull_seconds: int = 60
    admins: tuple[str, ...] = ()
    trusted_proxies: TrustedProxies = ()
    leases_per_address: int = 4

    @property
    def local_only(self) -> bool:
        """Whether the server listens on this machine only (loopback)."""
        return self.host.strip().lower() in LOCAL_HOSTS

    def is_admin(self, user: str | None) -> bool:
        """Whether ``user`` (the identified annotator, None when unknown) has the admin role."""
        if self.identity == "name":
            return self.local_only
        return bool(user) and user in self.admins

    @property
    def lease_limit(self) -> int | None:
        """Worklist cases one client address may hold under different names (None: no
        bound, for log-in identities)."""
        return self.leases_per_address if self.identity == "name" else None

    def warnings(self) -> list[str]:
        """What a start-up log must say loudly about this deployment."""
        if self.local_only or self.identity != "name":
            return []
        return [
            f"SHARED DEPLOYMENT WITHOUT AN IDENTITY PROVIDER: the studio listens on {self.host} "
            "and annotators only type a name, so anyone who reaches this server can submit, "
            "rate and take worklist cases under any name. Set ADASAM_USERS (password log-in) "
            "or run it as a Hugging Face Space with OAuth, or bind ADASAM_HOST=127.0.0.1."
        ]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StudioSettings:
        """Read the settings from ``env`` (:func:`adasam.settings.environment` in the app).

        Raises:
            ConfigError: a malformed value, with the variable's name.
        """
        env = dict(env)
        users = parse_users(env.get("ADASAM_USERS", ""))
        mode = (env.get("ADASAM_IDENTITY", "auto").strip().lower()) or "auto"
        if mode not in IDENTITY_MODES:
            raise ConfigError(
                f"ADASAM_IDENTITY={mode!r}: choose one of {', '.join(IDENTITY_MODES)}"
            )
        if mode == "auto":
            on_space_with_oauth = bool(env.get("SPACE_ID")) and bool(env.get("OAUTH_CLIENT_ID"))
            if on_space_with_oauth and oauth_available():
                mode = "oauth"
            else:
                mode = "password" if users else "name"
        if mode == "oauth" and not oauth_available():
            raise ConfigError(
                "ADASAM_IDENTITY=oauth needs Gradio's OAuth extra: pip install authlib itsdangerous"
            )
        if mode == "password" and not users:
            raise ConfigError("ADASAM_IDENTITY=password needs ADASAM_USERS=name:password,...")
        default_port = positive_int(env, "GRADIO_SERVER_PORT", 7860)
        return cls(
            host=_host(env),
            port=positive_int(env, "ADASAM_PORT", default_port),
            identity=mode,  # type: ignore[arg-type]
            users=users,
            default_annotator=env.get("ADASAM_ANNOTATOR", "").strip(),
            max_upload_mb=positive_int(env, "ADASAM_MAX_UPLOAD_MB", 200),
            model_concurrency=positive_int(env, "ADASAM_MODEL_CONCURRENCY", 1),
            seed_worklist=flag(env, "ADASAM_SEED_WORKLIST", True),
            auxol=flag(env, "ADASAM_AUXOL", True),
            refine_guard=flag(env, "ADASAM_REFINE_GUARD", True),
            model_pull_seconds=positive_int(env, "ADASAM_MODEL_PULL_SECONDS", 60),
            admins=tuple(a.strip() for a in env.get("ADASAM_ADMINS", "").split(",") if a.strip()),
            trusted_proxies=parse_trusted_proxies(env.get("ADASAM_TRUSTED_PROXIES", "")),
            leases_per_address=positive_int(env, "ADASAM_LEASES_PER_ADDRESS", 4),
        )
