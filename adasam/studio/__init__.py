"""ADA-SAM Studio: the Gradio web app on top of the ML core and storage.

Modules: :mod:`~adasam.studio.config` (server settings), :mod:`~adasam.studio.services`
(shared objects: store, models, ledger), :mod:`~adasam.studio.state` (per-session state),
:mod:`~adasam.studio.pipeline` (model steps), :mod:`~adasam.studio.views` and
:mod:`~adasam.studio.screens` (what the page shows), the handlers
(:mod:`~adasam.studio.case_handlers`, :mod:`~adasam.studio.segment_handlers`,
:mod:`~adasam.studio.review_handlers`) and :mod:`~adasam.studio.layout` (the page).
"""

from adasam.studio.config import StudioSettings
from adasam.studio.layout import build_ui, launch_options
from adasam.studio.services import Services, build_services

__all__ = ["Services", "StudioSettings", "build_services", "build_ui", "launch_options"]
