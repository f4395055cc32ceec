"""What a handler hands a ``gr.Image``: a PNG path (``studio.picture_files``) or an array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def picture(value: object) -> np.ndarray:
    """The pixels of a ``gr.Image`` update value (a path to a PNG, or an array)."""
    if isinstance(value, (str, Path)):
        return np.asarray(Image.open(value))
    return np.asarray(value)


def picture_shape(value: object) -> tuple[int, ...]:
    return picture(value).shape
