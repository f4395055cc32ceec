"""ADA-SAM Studio: the Gradio web app on top of the ML core and storage.

Two parts:

- **UI-free** (imports without Gradio; ``tests/test_architecture.py`` holds the list):
  :mod:`~studio.config` (server settings), :mod:`~studio.services` (shared objects: store,
  model catalog, ledger, drafts), :mod:`~studio.state` (per-session state),
  :mod:`~studio.pipeline` (model steps), :mod:`~studio.submission`, :mod:`~studio.identity`,
  :mod:`~studio.catalog` (models, cached; ``bump()`` for hot reload), :mod:`~studio.drafts`,
  :mod:`~studio.views` (images and texts), :mod:`~studio.page` (components by name);
- **UI**: :mod:`~studio.layout` (the page), :mod:`~studio.wiring` (events → handlers),
  :mod:`~studio.screens` (what handlers send back) and the handlers
  (:mod:`~studio.case_handlers`, :mod:`~studio.segment_handlers`,
  :mod:`~studio.review_handlers`, :mod:`~studio.api_handlers`).

Adding a feature (``studio/<feature>_view.py`` with its handlers beside it)::

    # studio/notes_view.py
    from studio.page import Page, Updates

    def build(page: Page) -> None:                 # components, each under a unique name
        page.add("notes_md", gr.Markdown())
        page.add("notes_button", gr.Button("Notes"))

    class NotesHandlers:
        def show(self, state) -> Updates:           # return only the slots that change
            return {"notes_md": "..."}

    def wire(page: Page, handlers: Handlers) -> None:
        page.on(page["notes_button"].click, NotesHandlers().show,
                inputs=["state"], outputs=["notes_md"], api_visibility="private")

then call ``notes_view.build(page)`` where it belongs in :mod:`~studio.layout` (one line in the
function of that column or tab) and ``notes_view.wire(page, handlers)`` at the end of
:func:`studio.wiring.wire_page`. Inputs and outputs are slot names; a handler returning a name
its event did not declare fails at once (:meth:`studio.page.Page.named`). Existing slots
(``state``, ``correction``, ``confirmation``, ... see :mod:`studio.screens`) can be outputs of
new events too. Model calls take ``**handlers.model_queue`` or
``**studio.wiring.model_queue(services)`` (the one limit, ``ADASAM_MODEL_CONCURRENCY``). A new
module that imports Gradio is UI; one that does not goes in the architecture test's UI-free
list.

A new **tab** is one function ``tab(page, services)`` in its ``studio/<feature>_view.py`` that
opens ``gr.Tab(...)``, builds and wires its components, and one entry in
:data:`studio.layout.SIDE_TABS` (the Volume and Quality tabs are built that way; see the
:mod:`studio.layout` docstring).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "StudioSettings": "studio.config",
    "Services": "studio.services",
    "build_services": "studio.services",
    "build_ui": "studio.layout",
    "launch_options": "studio.layout",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """``from studio import build_ui`` loads the page (and Gradio) only when asked for, so
    ``import studio.state`` stays free of Gradio."""
    if name not in _LAZY:
        raise AttributeError(f"module 'studio' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
