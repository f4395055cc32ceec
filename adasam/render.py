"""Pictures of the pipeline: heatmap overlays, prompts drawn on the slice, mask overlays.

Pure functions from arrays to uint8 RGB ``(H, W, 3)`` arrays, shared by the CLI and the studio.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from adasam.prompts import Prompts

MASK_COLOURS: tuple[tuple[int, int, int], ...] = ((0, 200, 255), (255, 180, 0), (120, 255, 90))
BOX_COLOUR = (0, 255, 0)
CONTOUR_COLOUR = (255, 0, 255)
POINT_COLOUR = (255, 255, 0)


def _jet(values: np.ndarray) -> np.ndarray:
    """[0, 1] floats → uint8 RGB with the classic 'jet' ramp (blue → cyan → yellow → red)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return (np.concatenate([r, g, b], axis=-1) * 255).astype(np.uint8)


def heatmap_overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 ``(H, W, 3)`` image + float ``(H, W)`` heatmap in [0, 1] → blended uint8 RGB."""
    colour = _jet(heatmap).astype(np.float32)
    out = image.astype(np.float32) * (1 - alpha) + colour * alpha
    return out.clip(0, 255).astype(np.uint8)


def contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Inner boundary pixels (bool ``(H, W)``) of a bool mask."""
    inner = ndimage.binary_erosion(mask, iterations=width, border_value=0)
    return mask & ~inner


def mask_overlay(
    image: np.ndarray,
    mask: np.ndarray,
    colour: tuple[int, int, int] = MASK_COLOURS[0],
    alpha: float = 0.4,
) -> np.ndarray:
    """Tint ``mask`` on the image and draw its outline in full colour."""
    out = image.astype(np.float32).copy()
    m = mask.astype(bool)
    out[m] = out[m] * (1 - alpha) + np.array(colour, np.float32) * alpha
    out[contour(m)] = colour
    return out.clip(0, 255).astype(np.uint8)


def prompts_overlay(
    image: np.ndarray, prompts: Prompts, mask_prompt: np.ndarray | None = None
) -> np.ndarray:
    """The box (green), the mask prompt's contour (magenta) and the point (yellow) on the slice.

    ``mask_prompt`` is the bool ``(H, W)`` region where the dense prompt's logits are positive;
    the CAM region of ``prompts`` is used when it is not given.
    """
    region = prompts.region if mask_prompt is None else mask_prompt
    out = image.copy()
    out[contour(region)] = CONTOUR_COLOUR
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    x0, y0, x1, y1 = (float(v) for v in prompts.box)
    lw = max(1, round(max(image.shape[:2]) / 256))
    draw.rectangle([x0, y0, x1, y1], outline=BOX_COLOUR, width=lw)
    if prompts.point is not None:
        px, py = (float(v) for v in prompts.point)
        r = 3 * lw
        draw.ellipse([px - r, py - r, px + r, py + r], outline=POINT_COLOUR, width=lw)
    return np.asarray(pil)


def mask_png(mask: np.ndarray) -> Image.Image:
    """Bool ``(H, W)`` → 8-bit grayscale PNG image with values 0 and 255."""
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L")
