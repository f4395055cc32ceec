"""COCO RLE written by storage and read by pycocotools, the reader COCO users have."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from storage.rle import bbox, encode_rle


@pytest.mark.parametrize("seed", range(6))
def test_rle_decodes_with_pycocotools(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 90, size=2))
    mask = rng.random(shape) > rng.uniform(0.05, 0.95)
    rle = encode_rle(mask)
    decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), mask)
    reference = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert rle["counts"] == reference["counts"].decode()
    assert int(coco_mask.area(reference)) == int(mask.sum())


def test_edge_cases_full_and_empty() -> None:
    for mask in (np.ones((5, 3), bool), np.zeros((5, 3), bool)):
        rle = encode_rle(mask)
        decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), mask)


def test_bbox_matches_pycocotools() -> None:
    mask = np.zeros((20, 30), bool)
    mask[3:9, 12:25] = True
    reference = coco_mask.toBbox(coco_mask.encode(np.asfortranarray(mask.astype(np.uint8))))
    assert bbox(mask) == [int(v) for v in reference]
    assert bbox(np.zeros((4, 4), bool)) == [0, 0, 0, 0]
