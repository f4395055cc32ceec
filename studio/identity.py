"""Who is annotating: the Hugging Face user, the logged-in user, or a typed name."""

from __future__ import annotations

import unicodedata

from studio.config import IdentityMode
from studio.errors import StudioError

MAX_NAME = 100


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
