"""What the page shows: images, captions and short texts made from the session state.

Pure functions (arrays and strings out), built on :mod:`adasam.render`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from adasam.imaging import Slice
from adasam.predictor import Click
from adasam.render import BOX_COLOUR, MASK_COLOURS, heatmap_overlay, mask_overlay, prompts_overlay
from studio.shown import CANVAS_MAX_SIDE, VIEW_SIDE, Shown, bounded_shape, picture_to_slice
from studio.state import CaseSource, CaseState, StructureWork

POSITIVE_COLOUR = (40, 220, 60)
NEGATIVE_COLOUR = (255, 50, 50)
CORNER_COLOUR = (255, 255, 0)
FINAL_COLOUR = MASK_COLOURS[0]
STAGE_LABELS = {
    "load": "model load",
    "classify": "classifier",
    "cam": "GradCAM",
    "prompts": "prompts",
    "encode": "SAM encoder",
    "decode": "SAM decoder",
}


def _marker_radius(shape: tuple[int, ...]) -> int:
    return max(2, round(max(shape[:2]) / 80))


def _draw_clicks(
    image: np.ndarray,
    clicks: tuple[Click, ...],
    corner: tuple[float, float] | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Clicks as filled dots (green adds, red removes), a box corner as a yellow ring, the
    box as a rectangle."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    r = _marker_radius(image.shape)
    lw = max(1, r // 2)
    if box is not None:
        draw.rectangle(box, outline=BOX_COLOUR, width=lw)
    for c in clicks:
        colour = POSITIVE_COLOUR if c.positive else NEGATIVE_COLOUR
        draw.ellipse([c.x - r, c.y - r, c.x + r, c.y + r], fill=colour, outline=(0, 0, 0))
    if corner is not None:
        x, y = corner
        draw.ellipse([x - r, y - r, x + r, y + r], outline=CORNER_COLOUR, width=lw)
    return np.asarray(pil)


def heatmap_view(
    work: StructureWork, display: np.ndarray | Shown, max_side: int = VIEW_SIDE
) -> np.ndarray:
    """The GradCAM heatmap blended on the slice (at most ``max_side`` pixels on its longer
    side, see :mod:`studio.shown`)."""
    shown = Shown.of(display, max_side)
    return heatmap_overlay(shown.image, shown.heatmap(work.heatmap))


def heatmap_label(work: StructureWork) -> str:
    """Caption of the heatmap: the classifier's verdict."""
    verdict = "found" if work.found else "not found"
    return f"GradCAM · {work.name}: p = {work.probability:.2f} ({verdict})"


def _marks(
    image: np.ndarray, shown: Shown, clicks: tuple[Click, ...], work: StructureWork
) -> np.ndarray:
    """:func:`_draw_clicks` of slice-pixel ``clicks``, the work's box corner and user box."""
    corner = None if work.corner is None else shown.point(*work.corner)
    box = None if work.user_box is None else shown.box(work.user_box)
    return _draw_clicks(image, shown.clicks(clicks), corner, box)


def prompts_view(
    work: StructureWork, display: np.ndarray | Shown, max_side: int = VIEW_SIDE
) -> np.ndarray:
    """The automatic prompts (box green, mask-prompt contour magenta, point yellow), or the
    user's own box and clicks when the structure was not found (at most ``max_side``)."""
    shown = Shown.of(display, max_side)
    if work.prompts is not None:
        region = None if work.prompt_mask is None else shown.mask(work.prompt_mask)
        out = prompts_overlay(shown.image, shown.prompts(work.prompts), region)
    else:
        out = np.array(shown.image, copy=True)
    return _marks(out, shown, work.prompt_clicks, work)


def prompts_label(work: StructureWork) -> str:
    """Caption of the prompts image."""
    if work.prompts is not None:
        point = ", point yellow" if work.prompts.point is not None else ""
        return f"Prompts: box green, mask prompt magenta{point}"
    return "No automatic prompt: draw a box or click on the structure below"


SCORE_NOTE = (
    "Score: SAM's own estimate of the mask's overlap (IoU) with the true structure, 0–1, "
    "higher is better. It is a prediction, not a measurement; a poor mask can score below 0."
)
CANVAS_SIDE = 1024
"""The correction canvas is sent at least this many pixels on its longer side (integer
nearest-neighbour upscaling), so a small slice fills the canvas sharply and clicks map back to
slice pixels exactly (Gradio's click coordinates are only exact up to the image's own size);
and at most :data:`~studio.shown.CANVAS_MAX_SIDE` (larger slices are shrunk)."""


def canvas_scale(shape: tuple[int, ...]) -> int:
    """Integer upscaling factor of the canvas for a slice of ``shape`` (H, W, ...): 1 for
    slices of ``CANVAS_SIDE`` pixels or more, at most 16."""
    return max(1, min(16, CANVAS_SIDE // max(1, max(shape[:2]))))


def upscale(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W[, C]) enlarged by :func:`canvas_scale` (each pixel a k×k block)."""
    k = canvas_scale(image.shape)
    if k == 1:
        return image
    return np.repeat(np.repeat(image, k, axis=0), k, axis=1)


def canvas_shape(slice_hw: tuple[int, int]) -> tuple[int, int]:
    """``(h, w)`` of the correction canvas of a slice of ``slice_hw``."""
    shown = bounded_shape(slice_hw, CANVAS_MAX_SIDE)
    if shown != slice_hw:
        return shown
    k = canvas_scale(slice_hw)
    return slice_hw[0] * k, slice_hw[1] * k


def canvas_to_slice(x: float, y: float, slice_hw: tuple[int, int]) -> tuple[float, float]:
    """The slice pixel under canvas pixel ``(x, y)`` (the canvas is :func:`canvas_shape`)."""
    return picture_to_slice(x, y, slice_hw, canvas_shape(slice_hw))


def candidate_gallery(
    work: StructureWork, display: np.ndarray | Shown, max_side: int = VIEW_SIDE
) -> list[np.ndarray]:
    """SAM's candidates, each tinted on the slice at most ``max_side`` pixels on its longer
    side (no caption on the image: the scores are in :func:`candidates_markdown`, beside the
    gallery)."""
    shown = Shown.of(display, max_side)
    return [
        mask_overlay(shown.image, shown.mask(c.mask), MASK_COLOURS[i % len(MASK_COLOURS)])
        for i, c in enumerate(work.candidates)
    ]


def candidates_markdown(work: StructureWork) -> str:
    """One line per candidate, in the gallery's order: number, score, area, which is chosen."""
    lines = [f"**Candidates for {work.name}** (click one to switch)"]
    for i, c in enumerate(work.candidates):
        area = int(np.count_nonzero(c.mask))
        mark = " **← chosen**" if i == work.chosen else ""
        size = f"{area} px" if area else "**empty** (0 px: nothing to pick)"
        lines.append(f"- #{i + 1}: score **{c.score:.2f}** · {size}{mark}")
    return "\n".join(lines)


def correction_view(
    work: StructureWork | None, display: np.ndarray | Shown, max_side: int = CANVAS_MAX_SIDE
) -> np.ndarray:
    """The current mask with the clicks, the box corner and the user's box drawn on it (at
    most ``max_side`` pixels on its longer side; the mask itself keeps the slice's size)."""
    shown = Shown.of(display, max_side)
    if work is None:
        return np.array(shown.image, copy=True)
    mask = work.mask
    if mask is None:
        out = np.array(shown.image, copy=True)
    else:
        out = mask_overlay(shown.image, shown.mask(mask), FINAL_COLOUR)
    return _marks(out, shown, work.all_clicks, work)


def correction_status(work: StructureWork | None, latency_ms: float | None = None) -> str:
    """One line under the correction image: what the mask is and how to go on."""
    if work is None:
        return "Run the pipeline to get a mask to correct."
    if work.corner is not None:
        return "First corner set: click the opposite corner of the box."
    if work.current is None:
        return (
            f"**{work.name} was not found.** Click inside it with *Add (+)*, or choose *Box* and "
            "click two opposite corners: SAM then proposes three masks."
        )
    mask = work.mask
    area = 0 if mask is None else int(np.count_nonzero(mask))
    parts = [
        f"{work.name}: candidate #{work.chosen + 1}",
        f"{len(work.clicks)} refinement click{'s' if len(work.clicks) != 1 else ''}",
        f"{area} px",
    ]
    if work.brushed is not None:
        parts.append("brush edits applied")
    if latency_ms is not None:
        parts.append(f"refined in {latency_ms:.0f} ms")
    return " · ".join(parts)


def timings_markdown(state: CaseState | None) -> str:
    """Per-stage times of the last pipeline run, in small print."""
    if state is None or not state.timings_ms:
        return ""
    stages = [f"{STAGE_LABELS.get(k, k)} {v:.0f} ms" for k, v in state.timings_ms if k != "load"]
    total = sum(v for k, v in state.timings_ms if k != "load")
    model = (
        f"Answered by **{state.model_name} v{state.model_version}**. " if state.model_name else ""
    )
    return f"{model}Time per stage: {' · '.join(stages)} · total {total:.0f} ms"


def structures_markdown(state: CaseState | None) -> str:
    """One line per structure: the classifier's probability and whether it was found."""
    if state is None or not state.works:
        return ""
    lines = []
    for w in state.works:
        if w.found:
            best = w.candidates[0].score if w.candidates else float("nan")
            lines.append(
                f"- **{w.name}**: found (p = {w.probability:.2f}); best candidate score {best:.2f}"
            )
        else:
            lines.append(
                f"- **{w.name}**: not found (p = {w.probability:.2f}); draw a box or click on it "
                "to prompt SAM yourself"
            )
    return "\n".join(lines)


def case_markdown(slice_: Slice, source: CaseSource) -> str:
    """A one-line description of the slice (never any identifying metadata)."""
    h, w = slice_.shape
    title = f"**{slice_.source_name}**"
    if source.kind == "upload" and source.name and source.name != slice_.source_name:
        shown = re.sub(r"([\\`\[\]()<>])", r"\\\1", source.name[:120])  # no links or HTML
        title += f" (your file {shown}: the name is shown to you only, never stored)"
    parts = [title, slice_.source_format.upper(), slice_.modality, f"{w}×{h} px"]
    if slice_.spacing is not None:
        parts.append(f"{slice_.spacing[1]:.2f}×{slice_.spacing[0]:.2f} mm")
    if slice_.num_slices is not None and slice_.slice_index is not None:
        parts.append(f"slice {slice_.slice_index + 1} of {slice_.num_slices}")
    if slice_.window is not None:
        win = slice_.window
        parts.append(f"window {win.name} L{win.level:g}/W{win.width:g}")
    if source.kind == "worklist":
        parts.append("from the worklist")
    return " · ".join(parts)


def result_json(state: CaseState | None) -> dict[str, Any]:
    """The pipeline's result in machine-readable form (also what the API returns)."""
    if state is None:
        return {}
    structures = []
    for w in state.works:
        mask = w.mask
        structures.append(
            {
                "name": w.name,
                "probability": round(w.probability, 4),
                "found": w.found,
                "prompt_source": w.prompt_source,
                "box": None if w.box is None else [round(v, 1) for v in w.box],
                "point": None
                if w.prompts is None or w.prompts.point is None
                else [round(float(v), 1) for v in w.prompts.point],
                "candidates": [
                    {
                        "rank": i,
                        "score": round(c.score, 4),
                        "area_px": int(np.count_nonzero(c.mask)),
                    }
                    for i, c in enumerate(w.candidates)
                ],
                "chosen": w.chosen if w.candidates else None,
                "clicks": [[c.x, c.y, int(c.positive)] for c in w.all_clicks],
                "mask_area_px": None if mask is None else int(np.count_nonzero(mask)),
                "refused_click": None if w.rejected is None else w.rejected[2],
                "submitted": state.receipt(w.name) is not None,
            }
        )
    return {
        "case": state.token,
        "source": state.slice.source_name,
        "shape": list(state.slice.shape),
        "model": {"name": state.model_name, "version": state.model_version},
        "active": state.active,
        "structures": structures,
        "domain": None if state.domain is None else state.domain.to_dict(),
        "timings_ms": {k: round(v, 1) for k, v in state.timings_ms},
    }
