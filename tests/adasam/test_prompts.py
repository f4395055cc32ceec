from __future__ import annotations

import numpy as np
import pytest
import torch

from adasam.errors import ConfigError
from adasam.frame import ModelFrame
from adasam.prompts import (
    PromptConfig,
    cam_region,
    cam_to_mask_logits,
    make_prompts,
    mask_to_box,
    peak_point,
)


def two_blobs() -> np.ndarray:
    h = np.zeros((64, 100), np.float32)
    h[10:20, 30:50] = 0.9  # 200 px
    h[40:45, 70:75] = 1.0  # 25 px, higher peak
    h[40, 70] = 1.0
    return h


def test_largest_component_is_kept() -> None:
    region = cam_region(two_blobs(), 0.4, "largest")
    assert region.sum() == 200 and region[10:20, 30:50].all()


def test_largest_ties_broken_by_peak() -> None:
    h = np.zeros((20, 20), np.float32)
    h[0:3, 0:3] = 0.5
    h[10:13, 10:13] = 0.8
    region = cam_region(h, 0.4, "largest")
    assert region[10:13, 10:13].all() and region.sum() == 9


def test_all_components_with_min_area() -> None:
    h = two_blobs()
    assert cam_region(h, 0.4, "all", min_area=25).sum() == 225
    assert cam_region(h, 0.4, "all", min_area=26).sum() == 200


def test_eight_connectivity_joins_diagonal_pixels() -> None:
    h = np.zeros((5, 5), np.float32)
    h[1, 1] = h[2, 2] = h[3, 3] = 1
    assert cam_region(h, 0.5, "largest").sum() == 3


def test_threshold_is_inclusive() -> None:
    h = np.full((4, 4), 0.4, np.float32)
    assert cam_region(h, 0.4).all()
    assert not cam_region(h, 0.41).any()


def test_box_is_exact_inclusive_xyxy() -> None:
    m = np.zeros((64, 100), bool)
    m[10:20, 30:50] = True
    np.testing.assert_array_equal(mask_to_box(m), [30, 10, 49, 19])
    one = np.zeros((5, 5), bool)
    one[4, 0] = True
    np.testing.assert_array_equal(mask_to_box(one), [0, 4, 0, 4])
    assert mask_to_box(np.zeros((5, 5), bool)) is None


def test_peak_point_inside_region() -> None:
    h = two_blobs()
    h[15, 41] = 0.95
    region = cam_region(h, 0.4)
    np.testing.assert_array_equal(peak_point(h, region), [41, 15])
    assert peak_point(h, np.zeros_like(region)) is None


def test_make_prompts_geometry_and_logits() -> None:
    h = two_blobs()
    frame = ModelFrame(h.shape, 1024, 256)
    cfg = PromptConfig(threshold=0.4, use_point=True, logit_gain=10.0)
    p = make_prompts(h, frame, cfg)
    assert p is not None
    np.testing.assert_array_equal(p.box, [30, 10, 49, 19])
    np.testing.assert_array_equal(p.point, [30, 10])
    assert p.mask_logits.shape == (256, 256) and p.mask_logits.dtype == np.float32
    # region centre (row 15, col 40) → mask frame: scale 256/100 = 2.56
    assert p.mask_logits[int(15 * 2.56), int(40 * 2.56)] == pytest.approx(10 * (0.9 - 0.4))
    # the discarded small blob and the padding are negative
    assert p.mask_logits[int(42 * 2.56), int(72 * 2.56)] == pytest.approx(-4.0)
    ch, _ = frame.mask_content_hw
    assert np.all(p.mask_logits[ch:] == pytest.approx(-4.0))


def test_make_prompts_none_below_threshold_and_shape_check() -> None:
    frame = ModelFrame((8, 8), 1024, 256)
    assert make_prompts(np.full((8, 8), 0.3, np.float32), frame, PromptConfig()) is None
    with pytest.raises(ValueError, match="does not match"):
        make_prompts(np.zeros((9, 8), np.float32), frame, PromptConfig())


def test_cam_to_mask_logits_is_differentiable() -> None:
    frame = ModelFrame((16, 16), 64, 16)
    cam = torch.rand(2, 4, 4, requires_grad=True)
    out = cam_to_mask_logits(cam, None, frame, 0.4, 10.0)
    assert out.shape == (2, 1, 16, 16)
    out.sum().backward()
    assert cam.grad is not None and torch.all(cam.grad > 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(threshold=0.0),
        dict(threshold=1.0),
        dict(components="some"),
        dict(min_area=0),
        dict(logit_gain=0.0),
    ],
)
def test_prompt_config_validation(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        PromptConfig(**kwargs)
