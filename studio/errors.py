"""Turning every failure into words a clinician can act on.

Handlers are wrapped with :func:`user_errors`: errors a user can cause (a bad upload, a missing
choice, a refused value) become a ``gr.Error`` with their own message; anything else is logged
with its traceback on the server and shown as a short apology with a reference to find the log
line. No stack trace ever reaches the page. Expected errors are logged as one line
(``user error in <handler>: <message>``), never with a traceback.

Gradio and storage are imported only when a handler fails, so the UI-free part of the studio (state,
submission, identity, catalog, pipeline) imports this module without loading Gradio.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from adasam.errors import AdaSamError

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger("studio")

P = ParamSpec("P")
R = TypeVar("R")


class StudioError(AdaSamError):
    """Something the user asked for cannot be done now; the message says what to do instead."""


def _sentence(message: str) -> str:
    text = message.strip()
    if not text:
        return "The request could not be completed."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def as_user_error(exc: BaseException) -> gr.Error:
    """The ``gr.Error`` to show for ``exc`` (logs unexpected errors with their traceback)."""
    import gradio as gr

    from storage.errors import StorageError

    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, AdaSamError):
        return gr.Error(_sentence(str(exc)), title="Cannot do that")
    if isinstance(exc, StorageError):
        return gr.Error(_sentence(f"The annotation could not be saved: {exc}"), title="Not saved")
    reference = uuid.uuid4().hex[:8]
    log.error("unexpected error (reference %s)", reference, exc_info=exc)
    return gr.Error(
        "Something went wrong on the server and nothing was changed. Try again; if it happens "
        f"again, tell the administrator the reference {reference}.",
        title="Unexpected error",
    )


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a Gradio handler so that every exception reaches the page as a ``gr.Error``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        import gradio as gr

        from storage.errors import StorageError

        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except (AdaSamError, StorageError) as exc:
            # expected: one log line, no traceback (on the server or in Gradio's own log)
            log.info("user error in %s: %s", fn.__name__, " ".join(str(exc).split()))
            raise as_user_error(exc) from None
        except Exception as exc:
            raise as_user_error(exc) from exc

    return wrapper
