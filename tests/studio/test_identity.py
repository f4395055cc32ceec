from __future__ import annotations

import pytest

from studio.errors import StudioError
from studio.identity import clean_name, resolve_annotator


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
