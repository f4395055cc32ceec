"""ADA-SAM Studio: the Gradio web app on top of the ML core and storage.

Modules: :mod:`~studio.config` (server settings), :mod:`~studio.services`
(shared objects: store, models, ledger), :mod:`~studio.state` (per-session state),
:mod:`~studio.pipeline` (model steps), :mod:`~studio.views` and
:mod:`~studio.screens` (what the page shows), the handlers
(:mod:`~studio.case_handlers`, :mod:`~studio.segment_handlers`,
:mod:`~studio.review_handlers`) and :mod:`~studio.layout` (the page).
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
