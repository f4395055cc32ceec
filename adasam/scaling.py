"""Large slices go to the models downscaled; heatmaps, prompts and masks come back at full size.

SAM sees at most its input size (256 or 1024 pixels on the longest side) and the classifier far
less, but the rest of the pipeline (GradCAM upsampling, the CAM region and its components, three
masks per structure) works at the slice's own size: a 5000 × 5000 slice cost seconds and
gigabytes for nothing. Here a slice whose longest side exceeds ``max_side`` (default
:data:`MODEL_MAX_SIDE`) is resized for the models (area averaging), and what comes back is
mapped to the original pixels:

* heatmaps: bilinear, float32 ``(H, W)`` in [0, 1];
* prompt boxes (XYXY, inclusive pixels) and points: scaled per axis;
* CAM regions: nearest neighbour;
* candidate masks: recomputed from SAM's low-resolution logits through the full-size frame
  (the same bilinear upsampling SAM itself does), so their edges are as smooth as at full
  resolution. The logits and the dense prompt live in SAM's padded frame, which is the same for
  the slice and its downscaled copy (equal aspect ratio), and are returned unchanged.

Slices at most ``max_side`` on their longest side go through unchanged (bit for bit).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from PIL import Image

from adasam.frame import resized_shape
from adasam.predictor import Candidate, Click, Prediction, Predictor, StructureResult
from adasam.prompts import Prompts

MODEL_MAX_SIDE = 1024
"""Longest side (pixels) of what the models are given; larger slices are downscaled."""


def _shape(image: np.ndarray) -> tuple[int, int]:
    return int(image.shape[0]), int(image.shape[1])


def downscaled(image: np.ndarray, max_side: int = MODEL_MAX_SIDE) -> np.ndarray:
    """uint8 ``(h, w, 3)`` with ``max(h, w) <= max_side`` (area averaging); ``image`` itself
    when it is small enough."""
    h, w = _shape(image)
    if max(h, w) <= max_side:
        return image
    small_h, small_w = resized_shape(h, w, max_side)
    resized = Image.fromarray(np.ascontiguousarray(image)).resize(
        (max(1, small_w), max(1, small_h)), Image.Resampling.BOX
    )
    return np.asarray(resized, dtype=np.uint8)


def _factors(full: tuple[int, int], small: tuple[int, int]) -> tuple[float, float]:
    """(sx, sy): small = full × factor, per axis."""
    return small[1] / full[1], small[0] / full[0]


def _resize_float(array: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.float32), mode="F")
    return np.asarray(image.resize((hw[1], hw[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def _resize_mask(mask: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return np.asarray(image.resize((hw[1], hw[0]), Image.Resampling.NEAREST)) > 127


def _box_up(box: np.ndarray, sx: float, sy: float, hw: tuple[int, int]) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    out = np.array(
        [
            np.floor(x0 / sx),
            np.floor(y0 / sy),
            np.ceil((x1 + 1) / sx) - 1,
            np.ceil((y1 + 1) / sy) - 1,
        ],
        dtype=np.float64,
    )
    return np.clip(out, 0, [hw[1] - 1, hw[0] - 1, hw[1] - 1, hw[0] - 1])


def _point(x: float, y: float, sx: float, sy: float) -> tuple[float, float]:
    """A pixel position (centre convention) from one grid to the other."""
    return (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5


def _full_masks(
    predictor: Predictor, candidates: Sequence[Candidate], hw: tuple[int, int]
) -> tuple[Candidate, ...]:
    if not candidates:
        return ()
    frame = predictor.frame(hw)
    logits = torch.as_tensor(np.stack([c.logits for c in candidates]), dtype=torch.float32)
    with torch.inference_mode():
        full = frame.lowres_to_original(logits[:, None]) > predictor.bundle.sam.mask_threshold
    masks = full[:, 0].cpu().numpy()
    return tuple(replace(c, mask=masks[i]) for i, c in enumerate(candidates))


def _structure_up(
    predictor: Predictor, s: StructureResult, hw: tuple[int, int], sx: float, sy: float
) -> StructureResult:
    prompts = s.prompts
    if prompts is not None:
        point = None
        if prompts.point is not None:
            point = np.array(
                _point(float(prompts.point[0]), float(prompts.point[1]), 1 / sx, 1 / sy)
            )
        prompts = Prompts(
            region=_resize_mask(prompts.region, hw),
            box=_box_up(prompts.box, sx, sy, hw),
            mask_logits=prompts.mask_logits,
            point=point,
        )
    return replace(
        s,
        heatmap=np.clip(_resize_float(s.heatmap, hw), 0.0, 1.0),
        prompts=prompts,
        candidates=_full_masks(predictor, s.candidates, hw),
    )


def predict(
    predictor: Predictor,
    image: np.ndarray,
    structures: Sequence[str] | None = None,
    *,
    max_side: int = MODEL_MAX_SIDE,
    **overrides: float | None,
) -> Prediction:
    """:meth:`Predictor.predict` on a slice of any size (see the module docstring).

    Args:
        image: uint8 ``(H, W, 3)``.
        overrides: ``cam_threshold`` / ``presence_threshold``, passed on.

    Returns:
        The prediction at ``(H, W)``; ``timings_ms["rescale"]`` when the slice was resized.
    """
    small = downscaled(image, max_side)
    if small is image:
        return predictor.predict(image, structures, **overrides)
    start = time.perf_counter()
    hw = _shape(image)
    prediction = predictor.predict(small, structures, **overrides)
    sx, sy = _factors(hw, _shape(small))
    results = tuple(_structure_up(predictor, s, hw, sx, sy) for s in prediction.structures)
    timings = dict(prediction.timings_ms)
    timings["rescale"] = (time.perf_counter() - start) * 1000.0 - sum(
        v for k, v in prediction.timings_ms.items() if k != "load"
    )
    return replace(prediction, image_hw=hw, structures=results, timings_ms=timings)


def segment(
    predictor: Predictor,
    image: np.ndarray,
    *,
    box: Sequence[float] | None = None,
    clicks: Sequence[Click] = (),
    mask_logits: np.ndarray | None = None,
    multimask: bool = True,
    max_side: int = MODEL_MAX_SIDE,
) -> list[Candidate]:
    """:meth:`Predictor.segment` with ``box``/``clicks`` in the slice's own pixels; masks at
    ``(H, W)``."""
    small = downscaled(image, max_side)
    if small is image:
        return predictor.segment(
            image, box=box, clicks=clicks, mask_logits=mask_logits, multimask=multimask
        )
    hw = _shape(image)
    sx, sy = _factors(hw, _shape(small))
    small_box = None
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
        small_box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
    small_clicks = [Click(*_point(c.x, c.y, sx, sy), positive=c.positive) for c in clicks]
    candidates = predictor.segment(
        small, box=small_box, clicks=small_clicks, mask_logits=mask_logits, multimask=multimask
    )
    return list(_full_masks(predictor, candidates, hw))


def refine(
    predictor: Predictor,
    image: np.ndarray,
    clicks: Sequence[Click],
    previous_logits: np.ndarray | None = None,
    box: Sequence[float] | None = None,
    *,
    max_side: int = MODEL_MAX_SIDE,
) -> Candidate:
    """:meth:`Predictor.refine` on a slice of any size (one mask at ``(H, W)``)."""
    if not clicks and previous_logits is None:
        raise ValueError("refine needs at least one click or previous logits")
    if max(_shape(image)) <= max_side:
        return predictor.refine(image, clicks, previous_logits=previous_logits, box=box)
    return segment(
        predictor,
        image,
        box=box,
        clicks=clicks,
        mask_logits=previous_logits,
        multimask=False,
        max_side=max_side,
    )[0]
