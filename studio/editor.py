"""The brush editor: paint to add to the mask or to remove from it; binary mask out.

The ``gr.ImageEditor`` shows the slice with the current mask tinted on it as its background,
and one empty drawing layer with two fixed brush colours: blue adds, red removes; the eraser
takes strokes back. The painted layer is read from its colour and alpha channels::

    final = (mask | blue strokes) & ~red strokes

(Gradio 6.31's editor does not reliably show a layer sent from the server, so the mask lives in
the background and only the user's strokes live in the layer.) The editor may return the layer
at another size than the slice: it is mapped back with nearest-neighbour resampling, so the
result is always bool at the slice's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from adasam.render import mask_overlay
from studio.errors import StudioError
from studio.shown import CANVAS_MAX_SIDE, Shown

ADD_HEX = "#00c8ff"
ADD_RGB = (0, 200, 255)
REMOVE_HEX = "#ff3030"
REMOVE_RGB = (255, 48, 48)
MASK_TINT = (0, 120, 255)
BRUSH_OPACITY = 0.6
ALPHA_THRESHOLD = 64
"""A layer pixel is painted when its alpha is at least this (a quarter of full): the brush
paints at 60 % opacity, anti-aliased stroke edges fade below it."""


def editor_value(
    display: np.ndarray, mask: np.ndarray, max_side: int = CANVAS_MAX_SIDE
) -> dict[str, Any]:
    """The editor's value: the slice (uint8 (H, W, 3)) with ``mask`` (bool (H, W)) tinted on
    it, as an opaque RGBA background at most ``max_side`` pixels on its longer side (the
    strokes come back at that size and are mapped to the slice's), and no layer (the editor
    adds an empty one)."""
    if display.shape[:2] != mask.shape:
        raise ValueError(f"display {display.shape} and mask {mask.shape} differ in size")
    shown = Shown.of(np.asarray(display)[..., :3], max_side)
    h, w = shown.hw
    background = np.empty((h, w, 4), np.uint8)
    background[..., :3] = mask_overlay(shown.image, shown.mask(mask), MASK_TINT, alpha=0.45)
    background[..., 3] = 255
    return {"background": background, "layers": [], "composite": None}


def _strokes(layer: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(added, removed): bool (H, W) masks of the blue and the red strokes of one layer."""
    array = np.asarray(layer)
    if array.ndim != 3 or array.shape[2] != 4:
        raise StudioError(
            "The brush editor sent an image without transparency; reopen the 'Brush' tab and "
            "paint again."
        )
    painted = array[..., 3] >= ALPHA_THRESHOLD
    rgb = array[..., :3].astype(np.int32)
    to_add = ((rgb - np.array(ADD_RGB)) ** 2).sum(axis=-1)
    to_remove = ((rgb - np.array(REMOVE_RGB)) ** 2).sum(axis=-1)
    added = painted & (to_add <= to_remove)
    removed = painted & (to_remove < to_add)
    h, w = shape
    if added.shape != (h, w):
        added, removed = (
            np.asarray(
                Image.fromarray(m.astype(np.uint8) * 255).resize((w, h), Image.Resampling.NEAREST)
            )
            > 127
            for m in (added, removed)
        )
    return added, removed


def has_strokes(value: dict[str, Any] | None) -> bool:
    """Whether the editor's layers hold any painted pixel (alpha at least
    :data:`ALPHA_THRESHOLD`)."""
    layers = [] if not value else [la for la in value.get("layers") or [] if la is not None]
    for layer in layers:
        array = np.asarray(layer)
        if array.ndim == 3 and array.shape[2] == 4 and (array[..., 3] >= ALPHA_THRESHOLD).any():
            return True
    return False


def apply_strokes(mask: np.ndarray, value: dict[str, Any] | None) -> np.ndarray:
    """The mask after the strokes in the editor's layers: bool at ``mask``'s shape.

    ``value`` None or without layers means no stroke: the mask is returned unchanged (a copy).
    """
    result = np.array(mask, dtype=bool, copy=True)
    layers = [] if not value else [la for la in value.get("layers") or [] if la is not None]
    shape = (int(mask.shape[0]), int(mask.shape[1]))
    for layer in layers:
        added, removed = _strokes(layer, shape)
        result |= added
        result &= ~removed
    return result
