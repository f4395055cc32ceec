"""The model steps of a session: run the pipeline, prompt SAM, refine, undo, reset, brush.

Pure functions from a state (and the shared predictor) to a new state; no Gradio and no SQL
here (importing this module loads neither; torch comes with the predictor's types), so each
is unit-tested on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Literal

import numpy as np

from adasam import scaling
from adasam.imaging import model_image
from adasam.predictor import Candidate, Click, Predictor
from adasam.refine_guard import CheckedRefinement, GuardConfig, refine_checked
from studio.errors import StudioError
from studio.state import CaseState, StructureWork

if TYPE_CHECKING:
    from studio.catalog import ModelChoice

ClickMode = Literal["add", "remove", "box"]
CLICK_MODES: dict[str, ClickMode] = {
    "Add (+)": "add",
    "Remove (−)": "remove",
    "Box: two corners": "box",
}
"""Labels of the click-mode radio → mode."""


def run_pipeline(
    state: CaseState,
    predictor: Predictor,
    choice: ModelChoice,
    structures: Sequence[str] | None,
) -> CaseState:
    """Classifier → GradCAM → prompts → SAM on the slice; every earlier edit is dropped.

    Raises:
        StudioError: no structure chosen, or one the model does not segment.
    """
    names = list(structures) if structures else []
    if not names:
        raise StudioError("Choose at least one structure to segment.")
    unknown = [n for n in names if n not in choice.structures]
    if unknown:
        raise StudioError(
            f"The model {choice.name} does not segment {', '.join(unknown)}; choose among "
            f"{', '.join(choice.structures)}."
        )
    image = model_image(state.slice, choice.window)  # never the display window
    prediction = scaling.predict(predictor, image, names)  # large slices: downscaled for models
    frame = predictor.frame(prediction.image_hw)
    works = []
    for s in prediction.structures:
        prompt_mask = None
        if s.prompts is not None:
            prompt_mask = frame.lowres_region(s.prompts.mask_logits)
        works.append(
            StructureWork(
                name=s.name,
                probability=s.probability,
                found=s.found,
                heatmap=s.heatmap,
                prompts=s.prompts,
                prompt_mask=prompt_mask,
                candidates=s.candidates,
                prompt_source="cam" if s.found else None,
            )
        )
    active = state.active if state.active in names else names[0]
    return replace(
        state,
        model_key=choice.key,
        model_name=choice.name,
        model_version=choice.version,
        model_version_id=choice.model_version_id,
        prompt_threshold=predictor.bundle.config.prompts.threshold,
        timings_ms=tuple(prediction.timings_ms.items()),
        works=tuple(works),
        active=active,
        editor_version=None,
        receipts=(),
        domain=prediction.domain,
        input_window=choice.window,
    )


def out_of_domain_note(state: CaseState, trained_on: str) -> str | None:
    """What to tell the user when the slice is unlike the model's training slices (None when
    it is not, or the model has no domain check)."""
    d = state.domain
    if d is None or d.in_domain:
        return None
    seen = f" (it was trained on {trained_on})" if trained_on else ""
    return (
        f"This image is unlike the model's training slices{seen}: domain score {d.score:.1f} "
        f"> {d.threshold:.1f}. Its heatmap is shown as it is, but no automatic prompt was "
        "made. Draw a box (click mode “Box: two corners”) or click on the structure: plain "
        "LiteMedSAM answers drawn prompts on such images."
    )


def choose_candidate(work: StructureWork, index: int) -> StructureWork:
    """Start the correction from candidate ``index`` (refinement clicks and brush edits of
    the previous choice are dropped; they can be undone)."""
    if not work.candidates:
        raise StudioError(f"{work.name} has no candidates yet: draw a box or click on it first.")
    if not 0 <= index < len(work.candidates):
        raise StudioError(f"Choose candidate 1 to {len(work.candidates)}.")
    if index == work.chosen and not work.clicks and work.brushed is None:
        return work
    return work.then(chosen=index, clicks=(), refined=(), brushed=None, corner=None)


def _check_point(x: float, y: float, shape: tuple[int, int]) -> tuple[float, float]:
    h, w = shape
    try:
        fx, fy = float(x), float(y)
    except (TypeError, ValueError):
        raise StudioError("A click needs x and y pixel coordinates.") from None
    if not (0 <= fx < w and 0 <= fy < h):
        raise StudioError(f"Click inside the image (x 0–{w - 1}, y 0–{h - 1}).")
    return fx, fy


def click(
    work: StructureWork,
    predictor: Predictor,
    image: np.ndarray,
    x: float,
    y: float,
    mode: ClickMode,
    guard: GuardConfig | None = None,
) -> StructureWork:
    """One user click at ``(x, y)`` (slice pixels).

    With ``guard``, a refinement that collapses the mask (see :mod:`adasam.refine_guard`) is
    refused: the work comes back unchanged but for ``rejected`` (the click, SAM's mask, the
    message); clicking the same spot again applies it.

    - ``add``/``remove`` with a candidate: SAM's decoder refines the current mask with every
      click so far, the previous low-resolution logits and the box (the image embedding is
      cached, so this is fast).
    - ``add`` without a candidate (structure not found): SAM proposes three candidates from
      the clicks (and the drawn box, if any).
    - ``box``: the first click sets a corner, the second draws the box and SAM proposes three
      candidates from it.

    Raises:
        StudioError: a click outside the image, or a first click that removes.
    """
    fx, fy = _check_point(x, y, (int(image.shape[0]), int(image.shape[1])))
    if mode == "box":
        if work.corner is None:
            return work.then(corner=(fx, fy))
        (ax, ay) = work.corner
        box = (min(ax, fx), min(ay, fy), max(ax, fx), max(ay, fy))
        candidates = scaling.segment(predictor, image, box=box, multimask=True)
        return work.then(
            candidates=tuple(candidates),
            prompt_source="user",
            user_box=box,
            prompt_clicks=(),
            chosen=0,
            clicks=(),
            refined=(),
            corner=None,
            brushed=None,
        )
    if mode not in ("add", "remove"):
        raise StudioError("Choose a click mode: add, remove or box.")
    new = Click(fx, fy, positive=mode == "add")
    current = work.current
    if current is None:
        if not new.positive:
            raise StudioError(
                f"{work.name} has no mask yet: start with an 'Add (+)' click inside it, or draw "
                "a box."
            )
        prompt_clicks = (*work.prompt_clicks, new)
        candidates = scaling.segment(
            predictor, image, box=work.user_box, clicks=prompt_clicks, multimask=True
        )
        return work.then(
            candidates=tuple(candidates),
            prompt_source="user",
            prompt_clicks=prompt_clicks,
            chosen=0,
            clicks=(),
            refined=(),
            corner=None,
            brushed=None,
        )
    clicks = (*work.clicks, new)
    refined = _refine_click(
        predictor, image, work, current, new, (*work.prompt_clicks, *clicks), guard
    )
    if isinstance(refined, StructureWork):  # refused: the mask stays, the handler says why
        return refined
    return work.then(clicks=clicks, refined=(*work.refined, refined), corner=None, brushed=None)


def _refine_click(
    predictor: Predictor,
    image: np.ndarray,
    work: StructureWork,
    current: Candidate,
    new: Click,
    everything: tuple[Click, ...],
    guard: GuardConfig | None,
) -> Candidate | StructureWork:
    """The refined mask after click ``new`` (large slices downscaled for the model), or the
    work with the refusal recorded when the guard kept the previous mask."""
    if guard is not None and work.rejected is not None and _same_spot(work.rejected[0], new):
        return work.rejected[1]  # the refused spot clicked again: the user insists
    if guard is None:
        return scaling.refine(
            predictor, image, everything, previous_logits=current.logits, box=work.box
        )
    refine = partial(scaling.refine, predictor)
    checked = refine_checked(
        predictor, image, everything, current, box=work.box, cfg=guard, refine=refine
    )
    if not checked.accepted:  # the mask stays as it was (no undo step)
        return replace(work, rejected=(new, checked.refined, refusal_message(checked)))
    return checked.refined


def _same_spot(a: Click, b: Click) -> bool:
    return (round(a.x), round(a.y), a.positive) == (round(b.x), round(b.y), b.positive)


def refusal_message(checked: CheckedRefinement) -> str:
    """What the page says when the guard kept the previous mask."""
    why = "; ".join(checked.verdict.reasons)
    return (
        f"Kept the previous mask: SAM's answer to that click looked wrong ({why}). Click the same "
        "spot again to apply it anyway, try another spot, choose another of SAM's candidates, or "
        "use the brush."
    )


def undo(work: StructureWork) -> StructureWork:
    """The work before its last edit.

    Raises:
        StudioError: nothing to undo.
    """
    if work.previous is None:
        raise StudioError("Nothing to undo.")
    return work.previous


def reset(work: StructureWork) -> StructureWork:
    """Back to what the pipeline gave, as a new edit (so a reset itself can be undone)."""
    start = work.start()
    if start is work:
        return work
    return replace(start, previous=work, stamp=uuid.uuid4().hex)


def apply_brush(work: StructureWork, mask: np.ndarray) -> StructureWork:
    """Replace the mask with the brush editor's (bool, slice shape).

    Raises:
        StudioError: no candidate yet, or a mask of the wrong shape.
    """
    current = work.current
    if current is None:
        raise StudioError(f"{work.name} has no mask to edit yet: draw a box or click on it first.")
    if mask.shape != current.mask.shape or mask.dtype != np.bool_:
        raise StudioError("The brush mask does not match the slice; reload the editor.")
    if work.brushed is not None and np.array_equal(work.brushed, mask):
        return work
    if work.brushed is None and np.array_equal(current.mask, mask):
        return work
    return work.then(brushed=mask)
