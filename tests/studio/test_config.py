from __future__ import annotations

import pytest

from adasam.errors import ConfigError
from studio.config import StudioSettings, parse_users


def test_defaults_listen_on_this_machine_only_port_7860_with_a_name_field() -> None:
    s = StudioSettings.from_env({})
    assert (s.host, s.port, s.identity) == ("127.0.0.1", 7860, "name")
    assert s.max_upload_mb == 200 and s.model_concurrency == 1 and s.seed_worklist


def test_port_from_gradio_variable_unless_adasam_port_is_set() -> None:
    assert StudioSettings.from_env({"GRADIO_SERVER_PORT": "9000"}).port == 9000
    env = {"GRADIO_SERVER_PORT": "9000", "ADASAM_PORT": "9100"}
    assert StudioSettings.from_env(env).port == 9100


def test_identity_auto_picks_oauth_on_a_space_and_password_with_users(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    space = {"SPACE_ID": "org/studio", "OAUTH_CLIENT_ID": "abc"}
    monkeypatch.setattr("studio.config.oauth_available", lambda: True)
    assert StudioSettings.from_env(space).identity == "oauth"
    monkeypatch.setattr("studio.config.oauth_available", lambda: False)
    assert StudioSettings.from_env(space).identity == "name", "no OAuth extra: a name field"
    with pytest.raises(ConfigError, match="authlib itsdangerous"):
        StudioSettings.from_env({"ADASAM_IDENTITY": "oauth"})
    assert StudioSettings.from_env({"SPACE_ID": "org/studio"}).identity == "name"
    s = StudioSettings.from_env({"ADASAM_USERS": "alice:pw1, bob:pw2"})
    assert s.identity == "password" and s.users == (("alice", "pw1"), ("bob", "pw2"))


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ADASAM_PORT": "abc"}, "ADASAM_PORT"),
        ({"ADASAM_PORT": "0"}, "positive"),
        ({"ADASAM_IDENTITY": "ldap"}, "ADASAM_IDENTITY"),
        ({"ADASAM_IDENTITY": "password"}, "ADASAM_USERS"),
        ({"ADASAM_SEED_WORKLIST": "maybe"}, "ADASAM_SEED_WORKLIST"),
        ({"ADASAM_USERS": "alice"}, "name:password"),
        ({"ADASAM_USERS": "a:1,a:2"}, "twice"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        StudioSettings.from_env(env)


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("ADASAM_AUXOL", "maybe", "ADASAM_AUXOL='maybe' must be 1/0, true/false, yes/no or on/off"),
        ("ADASAM_REFINE_GUARD", "2", "ADASAM_REFINE_GUARD='2' must be 1/0, true/false, yes/no"),
        ("ADASAM_MAX_UPLOAD_MB", "-5", "ADASAM_MAX_UPLOAD_MB must be positive, got -5"),
        ("ADASAM_MODEL_PULL_SECONDS", "1.5", "ADASAM_MODEL_PULL_SECONDS='1.5' is not a whole"),
    ],
)
def test_a_bad_studio_variable_gets_the_shared_named_error(
    name: str, raw: str, message: str
) -> None:
    """The studio parses with adasam.settings' helpers: the same named, clear error."""
    with pytest.raises(ConfigError) as info:
        StudioSettings.from_env({name: raw})
    assert str(info.value).startswith(message), str(info.value)


def test_studio_switches_read_yes_and_no_words_and_default_on() -> None:
    assert StudioSettings.from_env({"ADASAM_AUXOL": " "}).auxol is True, "blank: the default"
    off = StudioSettings.from_env(
        {"ADASAM_AUXOL": "off", "ADASAM_REFINE_GUARD": "No", "ADASAM_SEED_WORKLIST": "0"}
    )
    assert (off.auxol, off.refine_guard, off.seed_worklist) == (False, False, False)


def test_parse_users_never_echoes_a_password() -> None:
    with pytest.raises(ConfigError) as info:
        parse_users("alice:secret,bob")
    assert "secret" not in str(info.value)
