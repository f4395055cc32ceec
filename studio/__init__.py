"""ADA-SAM Studio: the Gradio web app on top of the ML core and storage.

Modules: :mod:`~studio.config` (server settings), :mod:`~studio.services`
(shared objects: store, models, ledger), :mod:`~studio.state` (per-session state),
:mod:`~studio.pipeline` (model steps), :mod:`~studio.views` and
:mod:`~studio.screens` (what the page shows), the handlers
(:mod:`~studio.case_handlers`, :mod:`~studio.segment_handlers`,
:mod:`~studio.review_handlers`) and :mod:`~studio.layout` (the page).
"""

from studio.config import StudioSettings
from studio.layout import build_ui, launch_options
from studio.services import Services, build_services

__all__ = ["Services", "StudioSettings", "build_services", "build_ui", "launch_options"]
