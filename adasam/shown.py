"""Pictures of a slice at a bounded size, and how slice pixels map onto them.

A 4900 × 4900 slice drawn at its own size costs seconds per picture and megabytes per file
(issue 13): the studio's page and the CLI's ``predict`` draw each overlay (heatmap, prompts,
masks) on the display image shrunk to at most ``max_side`` pixels on its longer side (area
averaging), with the masks, heatmap and coordinates mapped onto it. Masks, heatmaps and clicks
themselves stay at the slice's size: storage, downloads, exports and the CLI's mask PNGs use
them. Slices within the bound are drawn from their own pixels unchanged (bit for bit).

Geometry and resizing only (nothing is drawn here); the bounds themselves belong to the callers
(``studio.shown``, ``adasam.commands.predict``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from adasam.frame import resized_shape
from adasam.predictor import Click
from adasam.prompts import Prompts


def bounded_shape(hw: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``hw`` when its longer side is at most ``max_side``, else shrunk to it (aspect kept)."""
    h, w = hw
    if max(h, w) <= max_side:
        return h, w
    small_h, small_w = resized_shape(h, w, max_side)
    return max(1, small_h), max(1, small_w)


def picture_to_slice(
    x: float, y: float, slice_hw: tuple[int, int], picture_hw: tuple[int, int]
) -> tuple[float, float]:
    """The slice pixel under pixel ``(x, y)`` of a picture of the slice at ``picture_hw``
    (larger: upscaled, smaller: shrunk), clamped to the slice."""
    (h, w), (ph, pw) = slice_hw, picture_hw
    col = min(w - 1, max(0, int((int(x) + 0.5) * w / pw)))
    row = min(h - 1, max(0, int((int(y) + 0.5) * h / ph)))
    return float(col), float(row)


def _resize(array: np.ndarray, hw: tuple[int, int], mode: str | None = None) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(array), mode=mode)
    return np.asarray(image.resize((hw[1], hw[0]), Image.Resampling.BOX))


@dataclass(frozen=True)
class Shown:
    """The display image of a slice at a bounded size, and how slice pixels map onto it.

    Attributes:
        image: uint8 ``(h, w, C)``: the display image itself when the slice is within the
            bound, else its area-averaged copy.
        slice_hw: ``(H, W)`` of the slice.
    """

    image: np.ndarray
    slice_hw: tuple[int, int]

    @classmethod
    def of(cls, display: np.ndarray | Shown, max_side: int) -> Shown:
        """``display`` (uint8 ``(H, W, C)``) shown at most ``max_side`` on its longer side.

        A :class:`Shown` is accepted too (one shrunk copy serves several pictures): itself
        when it is small enough, else shrunk further.
        """
        if isinstance(display, Shown):
            small = bounded_shape(display.hw, max_side)
            if small == display.hw:
                return display
            return cls(_resize(display.image, small), display.slice_hw)
        hw = (int(display.shape[0]), int(display.shape[1]))
        small = bounded_shape(hw, max_side)
        if small == hw:
            return cls(display, hw)
        return cls(_resize(display, small), hw)

    @property
    def hw(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])

    @property
    def shrunk(self) -> bool:
        """Whether the picture is smaller than the slice."""
        return self.hw != self.slice_hw

    @property
    def factors(self) -> tuple[float, float]:
        """(sx, sy): picture pixels per slice pixel along x and y."""
        (h, w), (sh, sw) = self.hw, self.slice_hw
        return w / sw, h / sh

    def mask(self, mask: np.ndarray) -> np.ndarray:
        """A bool ``(H, W)`` mask on the picture (a picture pixel is in when at least half of
        the slice pixels it covers are)."""
        if not self.shrunk:
            return mask
        return _resize(np.asarray(mask, dtype=np.uint8) * 255, self.hw) >= 128

    def heatmap(self, heatmap: np.ndarray) -> np.ndarray:
        """A float ``(H, W)`` map in [0, 1] on the picture (area averaged)."""
        if not self.shrunk:
            return heatmap
        small = _resize(np.asarray(heatmap, dtype=np.float32), self.hw, mode="F")
        return np.clip(small, 0.0, 1.0)

    def point(self, x: float, y: float) -> tuple[float, float]:
        """A slice pixel's centre on the picture."""
        if not self.shrunk:
            return x, y
        sx, sy = self.factors
        return (x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5

    def box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """An XYXY box of inclusive slice pixels on the picture."""
        if not self.shrunk:
            return box
        sx, sy = self.factors
        x0, y0, x1, y1 = box
        return x0 * sx, y0 * sy, (x1 + 1) * sx - 1, (y1 + 1) * sy - 1

    def clicks(self, clicks: tuple[Click, ...]) -> tuple[Click, ...]:
        """Clicks on the picture."""
        if not self.shrunk:
            return clicks
        return tuple(Click(*self.point(c.x, c.y), positive=c.positive) for c in clicks)

    def prompts(self, prompts: Prompts) -> Prompts:
        """The automatic prompts on the picture (the dense prompt's logits are unchanged)."""
        if not self.shrunk:
            return prompts
        x0, y0, x1, y1 = (float(v) for v in prompts.box)
        point = None if prompts.point is None else np.array(self.point(*map(float, prompts.point)))
        return Prompts(
            region=self.mask(prompts.region),
            box=np.array(self.box((x0, y0, x1, y1))),
            mask_logits=prompts.mask_logits,
            point=point,
        )
