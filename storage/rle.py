"""COCO run-length encoding of binary masks (the compressed string form pycocotools reads)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def rle_counts(mask: NDArray[np.bool_]) -> list[int]:
    """Run lengths of a mask in column-major order, starting with a (possibly empty) 0-run."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts.insert(0, 0)
    return [int(c) for c in counts]


def compress_counts(counts: list[int]) -> str:
    """COCO's compressed string for run lengths (LEB128-like, delta from two runs back)."""
    chars: list[str] = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            chunk = value & 0x1F
            value >>= 5
            more = value != -1 if chunk & 0x10 else value != 0
            if more:
                chunk |= 0x20
            chars.append(chr(chunk + 48))
    return "".join(chars)


def encode_rle(mask: NDArray[np.bool_]) -> dict[str, object]:
    """``{"size": [H, W], "counts": "..."}``: a COCO RLE segmentation of ``mask``."""
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": compress_counts(rle_counts(mask))}


def bbox(mask: NDArray[np.bool_]) -> list[int]:
    """COCO box ``[x, y, width, height]`` of the mask's pixels (zeros when empty)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [
        int(cols[0]),
        int(rows[0]),
        int(cols[-1] - cols[0] + 1),
        int(rows[-1] - rows[0] + 1),
    ]
