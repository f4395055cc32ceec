"""What every format decoder returns, and the checks and conversions they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from adasam.errors import IngestError
from adasam.imaging.windows import Window

VOLUME_FACTOR = 16
"""A volume or multi-frame file may hold at most ``VOLUME_FACTOR * max_pixels`` voxels in all.

Only the chosen slice is decoded into memory (``max_pixels`` bounds it); this second bound
refuses absurd headers (a 4096³ volume) before any data is read."""

MAX_ASPECT_RATIO = 64
"""The longest side of a slice may be at most this many times its shortest side.

The models resize the longest side to their input size (256 or 1024 pixels); a 1 × 513 strip
would become 0 pixels high. 64 keeps every sagittal or coronal cut of a volume with 8 or more
slices per 512 pixels."""

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Decoded:
    """One decoded 2D slice before windowing.

    Attributes:
        values: (H, W) real array in physical units (HU for CT) or grey levels; may still hold
            NaN/inf (the loader deals with them).
        rgb: uint8 (H, W, 3) when the input is an 8-bit display image (shown as is), else None.
        modality: "CT", "MR" or "OT".
        units: "HU" or "a.u.".
        file_window: the file's own window (DICOM Window Center/Width), if any.
        voi_display: uint8 (H, W) grey image made by the file's VOI LUT, if any.
        invert: True for DICOM MONOCHROME1 (low values shown white).
    """

    values: np.ndarray
    source_format: str
    rgb: np.ndarray | None = None
    spacing: tuple[float, float] | None = None
    modality: str = "OT"
    units: str = "a.u."
    metadata: dict[str, str | int | float] = field(default_factory=dict)
    slice_index: int | None = None
    axis: int | None = None
    num_slices: int | None = None
    file_window: Window | None = None
    voi_display: np.ndarray | None = None
    invert: bool = False


def format_pixels(n: int) -> str:
    """``400 MP`` for large counts, ``1,000 pixels`` for small ones."""
    if n >= 1_000_000:
        return f"{n / 1e6:.4g} MP"
    return f"{n:,} pixels"


def check_plane(height: int, width: int, max_pixels: int) -> None:
    """Refuse a zero-sized image, a strip (aspect ratio above :data:`MAX_ASPECT_RATIO`) or an
    image above ``max_pixels``, before decoding it.

    Raises:
        IngestError: with the size and the limit in words.
    """
    if height <= 0 or width <= 0:
        raise IngestError(f"The image is empty: it is {width} × {height} pixels. Export it again.")
    n = height * width
    long, short = max(height, width), min(height, width)
    if long > MAX_ASPECT_RATIO * short:
        raise IngestError(
            f"The image is {width} × {height} pixels, a strip {long // short}× longer than it "
            f"is wide; the limit is {MAX_ASPECT_RATIO}×. Crop it or choose another slice axis."
        )
    if n > max_pixels:
        raise IngestError(
            f"The image is {width} × {height} pixels ({format_pixels(n)}); the limit is "
            f"{format_pixels(max_pixels)}. Downsample it or crop it first."
        )


def check_volume(shape: tuple[int, ...], max_pixels: int, what: str = "volume") -> None:
    """Refuse a volume whose voxel count is above ``VOLUME_FACTOR * max_pixels``."""
    if any(int(s) <= 0 for s in shape):
        raise IngestError(
            f"The {what} is empty: its size is {' × '.join(str(int(s)) for s in shape)}."
        )
    n = int(np.prod([int(s) for s in shape], dtype=np.int64))
    limit = VOLUME_FACTOR * max_pixels
    if n > limit:
        raise IngestError(
            f"The {what} is {' × '.join(str(int(s)) for s in shape)} "
            f"({format_pixels(n)} in all); the limit is {format_pixels(limit)}. "
            "Crop it or resample it first."
        )


def choose_index(slice_index: int | None, depth: int, what: str = "slice") -> int:
    """The slice to show: ``slice_index``, or the middle one (``depth // 2``) when None.

    Raises:
        IngestError: when ``slice_index`` is outside ``0 .. depth - 1``.
    """
    if slice_index is None:
        return depth // 2
    if isinstance(slice_index, bool) or not isinstance(slice_index, (int, np.integer)):
        raise IngestError(f"The {what} number must be a whole number, got {slice_index!r}.")
    index = int(slice_index)
    if not 0 <= index < depth:
        raise IngestError(
            f"There is no {what} {index}: this file has {depth} {what}s, numbered 0 to {depth - 1}."
        )
    return index


def check_single(slice_index: int | None) -> None:
    """A single 2D image only has slice 0 (or None)."""
    if slice_index not in (None, 0):
        raise IngestError(
            f"This file is a single 2D image, so there is no slice {slice_index}; it only has "
            "slice 0."
        )


def luminance(rgb: np.ndarray) -> np.ndarray:
    """float32 (H, W) luminance ``0.299 R + 0.587 G + 0.114 B`` of an (H, W, 3) image."""
    return (np.asarray(rgb, dtype=np.float32) @ _LUMA).astype(np.float32)


def composite_on_black(rgba: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) from uint8 (H, W, 4): colour times alpha/255, rounded (transparent pixels
    become black, opaque ones keep their colour)."""
    rgb = rgba[:, :, :3].astype(np.uint32)
    alpha = rgba[:, :, 3:4].astype(np.uint32)
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def to_uint8_by_depth(array: np.ndarray, max_value: float) -> np.ndarray:
    """Scale non-negative integers 0..``max_value`` to uint8 0..255 (rounded, clipped)."""
    if array.dtype == np.uint8 and max_value == 255:
        return array
    scaled = np.asarray(array, dtype=np.float64) * (255.0 / max_value)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
