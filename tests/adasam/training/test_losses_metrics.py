from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from adasam.training.losses import (
    consistency_loss,
    dice_bce_per_item,
    focal_loss,
    mask_iou,
    ramp_weight,
    soft_dice_loss,
)
from adasam.training.metrics import auroc, dice, hd95, iou

BIG = 40.0  # logit whose sigmoid is 1 to float precision


def test_soft_dice_hand_computed() -> None:
    logits = torch.tensor([[BIG, BIG, -BIG, -BIG]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    # p = [1, 1, 0, 0], |p·t| = 1, |p| = 2, |t| = 2 → 1 − (2·1 + 1)/(2 + 2 + 1) = 0.4
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.4, abs=1e-6)
    assert soft_dice_loss(logits, target, eps=0).item() == pytest.approx(0.5, abs=1e-6)


def test_dice_bce_zero_logits() -> None:
    logits = torch.zeros(1, 4)
    target = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # p = 0.5 everywhere: dice = 1 − (2·1 + 1)/(2 + 2 + 1) = 0.4; BCE = ln 2
    assert dice_bce_per_item(logits, target).item() == pytest.approx(0.4 + math.log(2), 1e-6)


def test_focal_loss_hand_computed() -> None:
    logits = torch.tensor([0.0])
    target = torch.tensor([1.0])
    # p = 0.5, pt = 0.5, alpha = 0.25: 0.25 · 0.5² · ln 2
    assert focal_loss(logits, target).item() == pytest.approx(0.25 * 0.25 * math.log(2), 1e-6)


def test_mask_iou_and_consistency() -> None:
    logits = torch.full((1, 2, 2, 2), -1.0)
    logits[0, 0, 0, :] = 1.0  # predicts top row
    target = torch.tensor([[[[1, 0], [0, 0]]]])
    np.testing.assert_allclose(mask_iou(logits, target).numpy(), [[0.5, 0.0]])
    s = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([[[[1.0, 0.0], [0.5, 0.5]]]])
    assert consistency_loss(s, t).item() == pytest.approx((0.25 + 0.25 + 0 + 0) / 4)
    valid = torch.tensor([[[[True, False], [False, False]]]])
    assert consistency_loss(s, t, valid).item() == pytest.approx(0.25)


def test_ramp_weight() -> None:
    assert ramp_weight(0, 10, 2.0) == pytest.approx(2 * math.exp(-5))
    assert ramp_weight(10, 10, 2.0) == pytest.approx(2.0)
    assert ramp_weight(50, 10, 2.0) == pytest.approx(2.0)
    assert ramp_weight(3, 0, 2.0) == 2.0


def test_dice_iou_conventions() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert dice(a, b) == 1.0 and iou(a, b) == 1.0
    a[0, :2] = True
    assert dice(a, b) == 0.0
    b[0, 1:3] = True
    assert dice(a, b) == pytest.approx(0.5) and iou(a, b) == pytest.approx(1 / 3)


def test_hd95_on_hand_made_masks() -> None:
    a = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    b = np.roll(a, 3, axis=1)  # shifted 3 px right
    # surfaces: every surface pixel of one is ≤ 3 px from the other's surface, and the
    # left/right edges are exactly 3 away → the 95th percentile is 3
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b, spacing=(1.0, 0.5)) == pytest.approx(1.5)
    assert hd95(a, a) == 0.0
    empty = np.zeros_like(a)
    assert hd95(empty, empty) == 0.0
    assert hd95(a, empty, spacing=(2.0, 1.0)) == pytest.approx(math.hypot(40, 20))


def test_auroc() -> None:
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)
    assert auroc([0.2, 0.9], [1, 1]) != auroc([0.2, 0.9], [1, 1])  # NaN with one class


def test_area_bins_hand_computed() -> None:
    from adasam.training.evaluate import AreaBin, area_bins

    bins = area_bins(
        areas=[50, 150, 500, 5000],
        dices=[0.0, 0.4, 0.8, 0.9],
        found=[False, True, True, True],
        oracle=[0.2, 0.6, 0.9, 1.0],
        edges=(0, 200, 800, 3000, math.inf),
    )
    assert [(b.low, b.n) for b in bins] == [(0, 2), (200, 1), (3000, 1)]  # empty bin left out
    assert bins[0].dice == pytest.approx(0.2) and bins[0].found == pytest.approx(0.5)
    assert bins[0].oracle_dice == pytest.approx(0.4)
    assert [b.label for b in bins] == ["< 200 px", "200–800 px", "≥ 3000 px"]
    assert bins[2].to_dict()["high_px"] is None
    assert area_bins([10], [1.0], [True])[0].oracle_dice is None
    assert AreaBin(800, 3000, 0, 0, 0, None).label == "800–3000 px"
    with pytest.raises(ValueError, match="one entry per slice"):
        area_bins([10, 20], [1.0], [True])
