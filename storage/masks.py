"""Binary masks: validation, lossless 1-bit PNG encoding, and agreement measures."""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from storage.errors import InvalidInputError

BoolMask = NDArray[np.bool_]


def as_mask(mask: object, shape: tuple[int, int], *, what: str = "mask") -> BoolMask:
    """Validate a binary mask for a slice of ``shape`` and return it as a bool array.

    Accepts bool arrays and integer arrays holding only 0 and 1 (or 0 and 255, the usual
    encoding of a binary image). Anything else is refused rather than thresholded: a silently
    binarised soft mask would be a wrong label.
    """
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InvalidInputError(f"{what} must be 2-D (H, W); got an array of shape {array.shape}")
    if array.shape != tuple(shape):
        raise InvalidInputError(
            f"{what} has shape {array.shape} but the slice is {tuple(shape)}; masks are stored "
            "at the slice's shape, resize it to the slice first"
        )
    if array.dtype == np.bool_:
        return array.copy()
    if not np.issubdtype(array.dtype, np.integer):
        raise InvalidInputError(
            f"{what} must be bool or integer 0/1, got dtype {array.dtype}; threshold soft masks "
            "before storing them"
        )
    values = np.unique(array)
    if set(values.tolist()) <= {0, 1}:
        return array.astype(np.bool_)
    if set(values.tolist()) <= {0, 255}:
        return np.asarray(array == 255, dtype=np.bool_)
    raise InvalidInputError(
        f"{what} holds values {values[:8].tolist()}; a binary mask holds only 0 and 1"
    )


def encode_png(mask: BoolMask) -> bytes:
    """Encode a bool mask as a 1-bit PNG (lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(mask, dtype=np.bool_)).save(
        buffer, format="PNG", optimize=True
    )
    return buffer.getvalue()


def decode_png(data: bytes) -> BoolMask:
    """Decode a mask written by :func:`encode_png`."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("1"), dtype=np.bool_).copy()


def dice(a: BoolMask, b: BoolMask) -> float:
    """Dice coefficient of two masks of one shape; 1.0 when both are empty."""
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(a, b).sum()) / total


def changed_pixels(a: BoolMask, b: BoolMask) -> int:
    """Number of pixels whose label differs between two masks."""
    return int(np.logical_xor(a, b).sum())
