"""The bounded-picture geometry shared by the studio and the CLI (issue 13, bounded cost): a
large slice is drawn at most ``max_side`` pixels, its masks, heatmap and coordinates mapped onto
the picture; a slice within the bound is drawn from its own pixels."""

from __future__ import annotations

import numpy as np
import pytest

from adasam.predictor import Click
from adasam.prompts import Prompts
from adasam.shown import Shown, bounded_shape, picture_to_slice

BIG_HW = (1200, 2400)


def test_bounded_shape_keeps_small_shapes_and_the_aspect_of_large_ones() -> None:
    assert bounded_shape((300, 200), 1024) == (300, 200)
    assert bounded_shape((1024, 10), 1024) == (1024, 10)
    assert bounded_shape(BIG_HW, 1200) == (600, 1200)
    assert bounded_shape((4900, 4900), 2048) == (2048, 2048)
    assert bounded_shape((1, 5000), 100) == (1, 100), "never a zero side"


def test_a_slice_within_the_bound_is_drawn_from_its_own_pixels() -> None:
    display = np.random.default_rng(0).integers(0, 255, (300, 200, 3), dtype=np.uint8)
    shown = Shown.of(display, 1024)
    assert shown.image is display and not shown.shrunk and shown.factors == (1.0, 1.0)
    mask = np.zeros((300, 200), bool)
    assert shown.mask(mask) is mask and shown.point(3.0, 4.0) == (3.0, 4.0)
    assert shown.box((1.0, 2.0, 3.0, 4.0)) == (1.0, 2.0, 3.0, 4.0)


def test_a_large_slice_is_shrunk_with_its_masks_and_coordinates() -> None:
    display = np.zeros((*BIG_HW, 3), np.uint8)
    display[:, 1200:] = 200  # right half bright
    shown = Shown.of(display, 1200)
    assert shown.hw == (600, 1200) and shown.slice_hw == BIG_HW and shown.factors == (0.5, 0.5)
    assert shown.image[:, 601:].min() == 200 and shown.image[:, :599].max() == 0
    mask = np.zeros(BIG_HW, bool)
    mask[400:800, 200:1000] = True  # → rows 200:400, columns 100:500 at half size
    small = shown.mask(mask)
    assert small.shape == (600, 1200) and small.dtype == bool
    assert int(small.sum()) == 200 * 400 and small[200:400, 100:500].all()
    heat = np.zeros(BIG_HW, np.float32)
    heat[:600] = 1.0
    small_heat = shown.heatmap(heat)
    assert np.allclose(small_heat[:300], 1.0) and np.allclose(small_heat[300:], 0.0)
    assert shown.point(1999.0, 999.0) == pytest.approx((999.25, 499.25))  # pixel centres
    assert shown.box((200.0, 400.0, 999.0, 799.0)) == pytest.approx((100.0, 200.0, 499.0, 399.0))
    (click,) = shown.clicks((Click(1999.0, 999.0, False),))
    assert (click.x, click.y, click.positive) == pytest.approx((999.25, 499.25, False))
    prompts = Prompts(mask, np.array([200.0, 400.0, 999.0, 799.0]), np.zeros((4, 4)), None)
    moved = shown.prompts(prompts)
    assert moved.region.shape == (600, 1200) and moved.box[0] == pytest.approx(100.0)
    again = Shown.of(shown, 600)  # a shrunk picture shrinks further, same slice
    assert again.hw == (300, 600) and again.slice_hw == BIG_HW


def test_picture_pixels_map_back_to_the_slice_pixel_under_them() -> None:
    assert picture_to_slice(0, 0, BIG_HW, (600, 1200)) == (1.0, 1.0)  # its centre: 0.5 → 1
    assert picture_to_slice(1199, 599, BIG_HW, (600, 1200)) == (2399.0, 1199.0)
    assert picture_to_slice(500, 100, BIG_HW, (600, 1200)) == (1001.0, 201.0)
    assert picture_to_slice(5000, -3, BIG_HW, (600, 1200)) == (2399.0, 0.0), "clamped"
