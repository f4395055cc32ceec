from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from adasam.errors import ConfigError
from studio.config import StudioSettings, TrustedProxies, parse_trusted_proxies
from studio.errors import StudioError
from studio.identity import (
    CLIENT_ADDRESS,
    ClientAddress,
    clean_name,
    client_address,
    request_address,
    resolve_annotator,
    switch_off_server_proxy_headers,
)


def test_each_mode_takes_its_own_source() -> None:
    kw = {"typed": "typed", "login_user": "login", "hub_user": "hub"}
    assert resolve_annotator("name", **kw) == "typed"
    assert resolve_annotator("password", **kw) == "login"
    assert resolve_annotator("oauth", **kw) == "hub"


@pytest.mark.parametrize(
    ("mode", "message"),
    [("name", "Annotator"), ("password", "log in"), ("oauth", "Sign in with Hugging Face")],
)
def test_missing_identity_says_what_to_do(mode: str, message: str) -> None:
    with pytest.raises(StudioError, match=message):
        resolve_annotator(mode, typed="  ", login_user=None, hub_user=None)  # type: ignore[arg-type]


def test_names_are_trimmed_and_checked() -> None:
    assert clean_name("  Dr Rossi ") == "Dr Rossi"
    with pytest.raises(StudioError, match="Shorten"):
        clean_name("x" * 101)
    with pytest.raises(StudioError, match="printable"):
        clean_name("bad\x00name")


# -- the client address behind reverse proxies (issue 13) ---------------------------------------
def _proxies(raw: str) -> TrustedProxies:
    return parse_trusted_proxies(raw)


def test_an_untrusted_peer_cannot_pick_its_address_with_the_header() -> None:
    spoofed = ["10.9.9.9"]
    assert client_address("198.51.100.4", spoofed, ()) == "198.51.100.4"  # nothing trusted
    assert client_address("127.0.0.1", spoofed, ()) == "127.0.0.1", "loopback is not special"
    assert client_address("198.51.100.4", spoofed, _proxies("10.0.0.5")) == "198.51.100.4"
    assert client_address(None, spoofed, _proxies("10.0.0.5")) is None


def test_one_trusted_proxy_gives_the_address_it_appended() -> None:
    trusted = _proxies("10.0.0.5")
    assert client_address("10.0.0.5", ["203.0.113.7"], trusted) == "203.0.113.7"
    # what the client wrote itself stays left of what the proxy appended: never read
    assert client_address("10.0.0.5", ["10.9.9.9, 203.0.113.7"], trusted) == "203.0.113.7"
    assert client_address("10.0.0.5", [], trusted) == "10.0.0.5", "no header: the proxy"


def test_chained_trusted_proxies_are_walked_from_the_right() -> None:
    trusted = _proxies("10.0.0.0/8, 2001:db8::/32")
    chain = ["6.6.6.6, 198.51.100.4, 10.1.1.1"]  # spoof, client, inner proxy
    assert client_address("10.0.0.5", chain, trusted) == "198.51.100.4"
    two_headers = ["6.6.6.6", "198.51.100.4, 2001:db8::7"]  # one header line per proxy
    assert client_address("2001:db8::1", two_headers, trusted) == "198.51.100.4"
    everyone_trusted = ["10.2.2.2, 10.1.1.1"]
    assert client_address("10.0.0.5", everyone_trusted, trusted) == "10.2.2.2", "the origin"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("not-an-ip", "10.0.0.5"),
        ("198.51.100.4, not-an-ip", "10.0.0.5"),
        ("", "10.0.0.5"),
        (" , ", "10.0.0.5"),
        ("198.51.100.4:5555", "198.51.100.4"),
        ("[2001:db8:1::9]:443", "2001:db8:1::9"),
        ("203.0.113.7\x00", "10.0.0.5"),
    ],
)
def test_a_malformed_header_leaves_the_proxys_address(header: str, expected: str) -> None:
    assert client_address("10.0.0.5", [header], _proxies("10.0.0.5")) == expected


def test_trusted_proxies_are_parsed_and_checked() -> None:
    trusted = parse_trusted_proxies(" 10.0.0.5, 172.16.0.0/12,,::1 ")
    assert [str(n) for n in trusted] == ["10.0.0.5/32", "172.16.0.0/12", "::1/128"]
    assert parse_trusted_proxies("") == ()
    assert StudioSettings.from_env({}).trusted_proxies == ()
    env = {"ADASAM_TRUSTED_PROXIES": "10.0.0.0/8"}
    assert [str(n) for n in StudioSettings.from_env(env).trusted_proxies] == ["10.0.0.0/8"]
    with pytest.raises(ConfigError, match="ADASAM_TRUSTED_PROXIES entry 'proxy.local'"):
        StudioSettings.from_env({"ADASAM_TRUSTED_PROXIES": "10.0.0.5, proxy.local"})


def test_the_web_servers_own_header_handling_is_switched_off() -> None:
    environ: dict[str, str] = {"FORWARDED_ALLOW_IPS": "*"}
    warning = switch_off_server_proxy_headers(environ)
    assert warning is not None and "FORWARDED_ALLOW_IPS is ignored" in warning
    assert "ADASAM_TRUSTED_PROXIES" in warning and environ == {"FORWARDED_ALLOW_IPS": ""}
    assert switch_off_server_proxy_headers(environ) is None, "nothing overridden: no warning"
    assert switch_off_server_proxy_headers({}) is None
    from uvicorn.middleware.proxy_headers import _TrustedHosts

    assert "127.0.0.1" not in _TrustedHosts(environ["FORWARDED_ALLOW_IPS"]), "trusts nobody"


def test_a_gradio_request_gives_the_same_address() -> None:
    from starlette.datastructures import Headers

    trusted = _proxies("10.0.0.5")
    live = SimpleNamespace(
        client=SimpleNamespace(host="10.0.0.5"),
        headers=Headers(raw=[(b"x-forwarded-for", b"10.9.9.9"), (b"x-forwarded-for", b"1.2.3.4")]),
    )
    assert request_address(live, trusted) == "1.2.3.4"
    queued = SimpleNamespace(  # a queued event's request carries plain dicts
        client=SimpleNamespace(host="10.0.0.5"), headers={"X-Forwarded-For": "203.0.113.7"}
    )
    assert request_address(queued, trusted) == "203.0.113.7"
    assert request_address(queued, ()) == "10.0.0.5"
    assert request_address(None, trusted) is None
    assert request_address(SimpleNamespace(), trusted) is None


def test_the_middleware_hands_the_address_to_the_login_guard() -> None:
    seen: list[str | None] = []

    async def app(scope: dict, receive: object, send: object) -> None:
        seen.append(CLIENT_ADDRESS.get())

    middleware = ClientAddress(app, trusted_proxies=_proxies("10.0.0.5"))
    headers = [(b"x-forwarded-for", b"10.9.9.9, 203.0.113.7")]
    for peer in ("10.0.0.5", "198.51.100.4"):
        scope = {"type": "http", "client": (peer, 1234), "headers": headers}
        asyncio.run(middleware(scope, None, None))
    assert seen == ["203.0.113.7", "198.51.100.4"]
    assert CLIENT_ADDRESS.get() is None, "reset after the request"


def test_an_untrusted_forwarding_peer_is_named_once_in_the_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import studio.identity as identity

    monkeypatch.setattr(identity, "_hinted", set())
    with caplog.at_level("WARNING", logger="studio"):
        for _ in range(3):
            client_address("10.0.0.9", ["203.0.113.7"], ())
    hints = [r.getMessage() for r in caplog.records if "X-Forwarded-For" in r.getMessage()]
    assert len(hints) == 1 and "10.0.0.9" in hints[0] and "ADASAM_TRUSTED_PROXIES" in hints[0]
