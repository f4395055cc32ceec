"""What each kind of handler sends back to the page, as :data:`~studio.page.Updates` (slot
name -> value), so a handler returns what it changes and nothing else.

- :func:`pipeline_screen` (``PIPELINE_SLOTS``): everything that depends on the pipeline's
  result and the active structure's edits;
- :func:`case_screen` (``CASE_SLOTS`` + the pipeline slots): a newly loaded slice, pipeline
  cleared;
- :func:`click_screen` (at most ``CLICK_SLOTS``): the few outputs a click changes (kept small,
  so a refinement reaches the page fast).

Slice numbers on screen are 1-based (``slice 13 of 40`` is index 12).
"""

from __future__ import annotations

import gradio as gr
import numpy as np

from adasam.imaging import WINDOW_PRESETS
from studio import views
from studio.page import Updates
from studio.picture_files import shown_picture
from studio.shown import CANVAS_MAX_SIDE, VIEW_SIDE, Shown
from studio.state import CaseState, StructureWork

FILE_WINDOW = "file default"
CUSTOM_WINDOW = "custom (level/width)"

PIPELINE_SLOTS = (
    "state",
    "heatmap",
    "prompts",
    "gallery",
    "candidates_md",
    "steps_md",
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
CASE_SLOTS = (
    "state",
    "slice_image",
    "case_md",
    "slice_slider",
    "slice_number",
    "axis",
    "window",
    "level",
    "width",
)
CASE_SCREEN_SLOTS = CASE_SLOTS + PIPELINE_SLOTS[1:]
CLICK_SLOTS = (
    "state",
    "correction",
    "correction_status",
    "gallery",
    "candidates_md",
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


PIPELINE_FOLDER = "pipeline-views"


def pipeline_picture(picture: np.ndarray) -> str:
    """A picture of the pipeline's row or the candidate gallery as a PNG file written once
    (see :mod:`studio.picture_files`: an array is rewritten in Gradio's cache on every event
    that returns it, even unchanged, while the page may be fetching it)."""
    return shown_picture(picture, PIPELINE_FOLDER)


def _gallery(work: StructureWork | None, display: np.ndarray | Shown) -> Updates:
    """The gallery as a ``gr.update`` of PNG files (a ``gr.Gallery(value=...)`` would encode
    its images once more, as WebP, when constructed)."""
    if work is None or not work.candidates:
        return {"gallery": gr.update(value=None, selected_index=None), "candidates_md": ""}
    pictures = [pipeline_picture(p) for p in views.candidate_gallery(work, display)]
    return {
        "gallery": gr.update(value=pictures, selected_index=work.chosen),
        "candidates_md": views.candidates_markdown(work),
    }


def can_submit(state: CaseState | None) -> bool:
    """Whether the submit button can be pressed: a mask, not submitted yet."""
    if state is None or state.work is None or state.work.mask is None:
        return False
    return state.receipt(state.work.name) is None


def _shown(state: CaseState) -> tuple[Shown, Shown]:
    """The slice's display image shrunk once for the canvas and once more for the pipeline's
    pictures (both bounded, see :mod:`studio.shown`)."""
    canvas = Shown.of(np.asarray(state.slice.display), CANVAS_MAX_SIDE)
    return canvas, Shown.of(canvas, VIEW_SIDE)


CANVAS_FOLDER = "canvas-views"


def canvas_picture(work: StructureWork | None, display: np.ndarray | Shown) -> str:
    """The correction canvas as a PNG file written once (see :mod:`studio.picture_files`: an
    unchanged canvas, e.g. after a refused click or a box's first corner, handed over as an
    array was rewritten in place while the page fetched it, and the next click was lost)."""
    return shown_picture(views.upscale(views.correction_view(work, display)), CANVAS_FOLDER)


def _empty_pipeline(
    state: CaseState | None, confirmation: str | None, shown: tuple[Shown, Shown] | None
) -> Updates:
    display = None if state is None else (shown or _shown(state))[0]
    return {
        "state": state,
        "heatmap": None,
        "prompts": None,
        **_gallery(None, np.zeros((1, 1, 3), np.uint8)),
        "steps_md": "",
        "correction": None if display is None else canvas_picture(None, display),
        "correction_status": views.correction_status(None),
        "structures_md": "",
        "timings_md": "",
        "result_json": views.result_json(state),
        "structure_radio": gr.Radio(choices=[], value=None, visible=False),
        "submit_button": gr.Button(interactive=False),
        "confirmation": confirmation or "",
        "downloads": None,
    }


def pipeline_screen(
    state: CaseState | None,
    confirmation: str | None = None,
    shown: tuple[Shown, Shown] | None = None,
) -> Updates:
    """The pipeline slots for ``state`` (all empty before the pipeline ran); ``shown``: the
    slice's :func:`_shown` pictures when the caller made them already."""
    work = None if state is None else state.work
    if state is None or work is None:
        return _empty_pipeline(state, confirmation, shown)
    canvas, view = shown or _shown(state)
    names = [w.name for w in state.works]
    receipt = state.receipt(work.name)
    if confirmation is None:
        confirmation = receipt.message() if receipt is not None else ""
    return {
        "state": state,
        "heatmap": pipeline_picture(views.heatmap_view(work, view)),
        "prompts": pipeline_picture(views.prompts_view(work, view)),
        **_gallery(work, view),
        "steps_md": f"{views.heatmap_label(work)}  \n{views.prompts_label(work)}",
        "correction": canvas_picture(work, canvas),
        "correction_status": views.correction_status(work),
        "structures_md": views.structures_markdown(state),
        "timings_md": views.timings_markdown(state),
        "result_json": views.result_json(state),
        "structure_radio": gr.Radio(choices=names, value=work.name, visible=len(names) > 1),
        "submit_button": gr.Button(interactive=can_submit(state)),
        "confirmation": confirmation,
        "downloads": None,
    }


def slice_controls(state: CaseState) -> Updates:
    """The slice navigation (1-based), live for volumes only.

    A case of N > 1 slices gets a slider 1..N; a single slice gets no slider at all (Gradio
    cannot show a 1..1 range) and a read-only "1" in the number box.
    """
    s = state.slice
    depth = s.num_slices or 1
    number = (s.slice_index or 0) + 1
    volume = depth > 1 and (state.source.path is not None or state.source.data is not None)
    label = f"Slice {number} of {depth}"
    slider = (
        gr.Slider(
            minimum=1,
            maximum=depth,
            value=number,
            step=1,
            interactive=volume,
            label=label,
            visible=True,  # shown again after a single slice hid it
        )
        if depth > 1
        else gr.Slider(value=1, interactive=False, label=label, visible=False)
    )
    return {
        "slice_slider": slider,
        "slice_number": gr.Number(value=number, interactive=volume, maximum=depth, minimum=1),
    }


def case_screen(state: CaseState) -> Updates:
    """The case slots for a freshly loaded slice, then the (cleared) pipeline slots."""
    s = state.slice
    window = s.window
    volume = (s.num_slices or 1) > 1
    shown = _shown(state)
    return {
        **pipeline_screen(state, shown=shown),
        "slice_image": pipeline_picture(shown[1].image),
        "case_md": views.case_markdown(s, state.source),
        **slice_controls(state),
        "axis": gr.Radio(
            visible=volume and s.axis is not None, value=s.axis if s.axis is not None else 2
        ),
        "window": window_name(state),
        "level": None if window is None else round(window.level, 2),
        "width": None if window is None else round(window.width, 2),
    }


def click_screen(
    state: CaseState,
    candidates_changed: bool,
    latency_ms: float | None = None,
    *,
    could_submit: bool | None = None,
) -> Updates:
    """The click slots: the correction view and status; the gallery and prompts image only
    when the click produced new candidates, the submit button only when the click changed
    whether it can be pressed (``could_submit``: before the click; None: unknown), so an
    ordinary click does not rebuild the button's config (otherwise they are left as they are)."""
    work = state.work
    canvas, view = _shown(state)
    out: Updates = {
        "state": state,
        "correction": canvas_picture(work, canvas),
        "correction_status": views.correction_status(work, latency_ms),
        "result_json": views.result_json(state),
    }
    submittable = can_submit(state)
    if submittable != could_submit:
        out["submit_button"] = gr.Button(interactive=submittable)
    if candidates_changed and work is not None:
        out.update(_gallery(work, view))
        out["prompts"] = pipeline_picture(views.prompts_view(work, view))
    return out
