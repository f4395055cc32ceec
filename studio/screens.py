"""What each kind of handler sends back to the page, in the order the layout wires outputs.

Three groups:

- :func:`pipeline_screen` (``PIPELINE_SLOTS``): everything that depends on the pipeline's
  result and the active structure's edits;
- :func:`case_screen` (``CASE_SLOTS`` + the pipeline slots): a newly loaded slice, pipeline
  cleared;
- :func:`click_screen` (``CLICK_SLOTS``): the few outputs a click changes (kept small, so a
  refinement reaches the page fast).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from adasam.imaging import WINDOW_PRESETS
from studio import views
from studio.state import CaseState, StructureWork

FILE_WINDOW = "file default"
CUSTOM_WINDOW = "custom (level/width)"

PIPELINE_SLOTS = (
    "state",
    "heatmap",
    "prompts",
    "gallery",
    "correction",
    "correction_status",
    "structures_md",
    "timings_md",
    "result_json",
    "structure_radio",
    "submit_button",
    "confirmation",
    "downloads",
)
CASE_SLOTS = ("state", "slice_image", "case_md", "slice_slider", "axis", "window", "level", "width")
CLICK_SLOTS = (
    "state",
    "correction",
    "correction_status",
    "gallery",
    "prompts",
    "result_json",
    "submit_button",
)


def window_name(state: CaseState) -> str:
    """The window drop-down's value for the slice on screen."""
    window = state.slice.window
    if window is None or window.name in ("dicom", "dicom-voi-lut"):
        return FILE_WINDOW
    if window.name in WINDOW_PRESETS or window.name == "auto":
        return window.name
    return CUSTOM_WINDOW


def _gallery(work: StructureWork | None, display: np.ndarray) -> Any:
    if work is None or not work.candidates:
        return gr.Gallery(value=None, label="SAM's three candidates", selected_index=None)
    return gr.Gallery(
        value=views.candidate_gallery(work, display),
        label=f"SAM's candidates for {work.name}: #{work.chosen + 1} is chosen (click another to "
        "switch)",
        selected_index=work.chosen,
    )


def _can_submit(state: CaseState | None) -> bool:
    if state is None or state.work is None or state.work.mask is None:
        return False
    return state.receipt(state.work.name) is None


def pipeline_screen(state: CaseState | None, confirmation: str | None = None) -> tuple[Any, ...]:
    """The pipeline slots for ``state`` (all empty before the pipeline ran)."""
    work = None if state is None else state.work
    if state is None or work is None:
        display = None if state is None else np.asarray(state.slice.display)
        return (
            state,
            gr.Image(value=None, label="GradCAM heatmap"),
            gr.Image(value=None, label="Prompts"),
            _gallery(None, np.zeros((1, 1, 3), np.uint8)),
            display,
            views.correction_status(None),
            "",
            "",
            views.result_json(state),
            gr.Radio(choices=[], value=None, visible=False),
            gr.Button(interactive=False),
            confirmation or "",
            None,
        )
    display = np.asarray(state.slice.display)
    names = [w.name for w in state.works]
    receipt = state.receipt(work.name)
    if confirmation is None:
        confirmation = receipt.message() if receipt is not None else ""
    return (
        state,
        gr.Image(value=views.heatmap_view(work, display), label=views.heatmap_label(work)),
        gr.Image(value=views.prompts_view(work, display), label=views.prompts_label(work)),
        _gallery(work, display),
        views.correction_view(work, display),
        views.correction_status(work),
        views.structures_markdown(state),
        views.timings_markdown(state),
        views.result_json(state),
        gr.Radio(choices=names, value=work.name, visible=len(names) > 1),
        gr.Button(interactive=_can_submit(state)),
        confirmation,
        None,
    )


def case_screen(state: CaseState) -> tuple[Any, ...]:
    """The case slots for a freshly loaded slice, then the (cleared) pipeline slots."""
    s = state.slice
    depth = s.num_slices or 1
    index = s.slice_index or 0
    window = s.window
    volume = depth > 1
    return (
        state,
        np.asarray(s.display),
        views.case_markdown(s, state.source),
        gr.Slider(
            minimum=0,
            maximum=max(depth - 1, 1),
            value=index,
            step=1,
            visible=volume,
            label=f"Slice (0–{depth - 1})",
        ),
        gr.Radio(visible=volume and s.axis is not None, value=s.axis if s.axis is not None else 2),
        window_name(state),
        None if window is None else round(window.level, 2),
        None if window is None else round(window.width, 2),
        *pipeline_screen(state)[1:],
    )


def click_screen(
    state: CaseState, candidates_changed: bool, latency_ms: float | None = None
) -> tuple[Any, ...]:
    """The click slots: the correction view and status; the gallery and prompts image only
    when the click produced new candidates (otherwise they are left as they are)."""
    work = state.work
    display = np.asarray(state.slice.display)
    return (
        state,
        views.correction_view(work, display),
        views.correction_status(work, latency_ms),
        _gallery(work, display) if candidates_changed else gr.skip(),
        gr.Image(value=views.prompts_view(work, display), label=views.prompts_label(work))
        if candidates_changed and work is not None
        else gr.skip(),
        views.result_json(state),
        gr.Button(interactive=_can_submit(state)),
    )
