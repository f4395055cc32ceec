"""Mask validation, lossless PNG coding, Dice and changed pixels."""

from __future__ import annotations

import numpy as np
import pytest

from storage import masks
from storage.errors import InvalidInputError


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (256, 256), (300, 17)])
def test_png_round_trip_is_lossless(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) > 0.6
    decoded = masks.decode_png(masks.encode_png(mask))
    assert decoded.dtype == np.bool_
    np.testing.assert_array_equal(decoded, mask)


def test_png_is_compact_for_an_organ_mask() -> None:
    yy, xx = np.mgrid[:512, :512]
    organ = (yy - 250) ** 2 / 90**2 + (xx - 260) ** 2 / 120**2 < 1
    assert len(masks.encode_png(organ)) < 2_000  # raw bool would be 262 144 bytes


def test_as_mask_accepts_bool_01_and_0255() -> None:
    expected = np.array([[True, False], [False, True]])
    for given in (expected, expected.astype(np.uint8), expected.astype(np.uint8) * 255):
        np.testing.assert_array_equal(masks.as_mask(given, (2, 2)), expected)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (np.zeros((3, 2), bool), "shape"),
        (np.zeros((2, 2, 1), bool), "2-D"),
        (np.full((2, 2), 0.5), "dtype"),
        (np.array([[0, 2], [1, 0]]), "binary"),
    ],
)
def test_as_mask_refuses_bad_masks(given: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        masks.as_mask(given, (2, 2))


def test_dice_and_changed_pixels() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert masks.dice(a, b) == 1.0  # both empty: perfect agreement
    a[0, :2] = True
    b[0, 1:3] = True
    assert masks.dice(a, b) == pytest.approx(2 * 1 / 4)
    assert masks.changed_pixels(a, b) == 2
