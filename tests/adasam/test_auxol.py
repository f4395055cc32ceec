"""AuxOL: crop, fusion rule, α selection, online update, persistence (hand-made cases)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasam.auxol import (
    AuxOL,
    AuxOLConfig,
    best_alpha,
    crop_window,
    fuse_logits,
    make_crop,
)
from adasam.errors import ConfigError

SMALL = AuxOLConfig(crop_size=32, widths=(4, 8), fifo_size=4, alpha_cases=3)


def _case(rng: np.random.Generator, size: int = 48) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A bright square on noise; SAM's logits cover the square plus a 4-px band (too large)."""
    image = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    y, x = rng.integers(10, 18, 2)
    gt = np.zeros((size, size), bool)
    gt[y : y + 16, x : x + 16] = True
    image[gt] = 200
    sam = np.full((size, size), -3.0, np.float32)
    sam[y - 4 : y + 20, x - 4 : x + 20] = 3.0
    return image, sam, gt


def _box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def test_crop_window_grows_the_box_and_clips_to_the_image():
    assert crop_window((10, 20, 29, 39), (100, 100), 0.1, 4) == (16, 44, 6, 34)
    assert crop_window((0, 0, 9, 9), (20, 12), 0.5, 0) == (0, 15, 0, 12)
    with pytest.raises(ValueError, match="x0 ≤ x1"):
        crop_window((5, 5, 1, 1), (20, 20), 0.1, 4)


def test_make_crop_resizes_to_the_specialist_size():
    rng = np.random.default_rng(0)
    image, sam, gt = _case(rng)
    crop = make_crop(image, _box(gt), sam, SMALL)
    assert crop.image.shape == (3, 32, 32) and crop.image.dtype == np.uint8
    assert crop.sam_logits.shape == (32, 32)
    x = crop.net_input()
    assert x.shape == (4, 32, 32) and float(x[:3].max()) <= 1.0
    assert set(np.unique(x[3].numpy())) <= {0.0, 1.0}


def test_fuse_logits_is_the_convex_combination():
    s, u = np.array([2.0, -1.0]), np.array([-4.0, 3.0])
    np.testing.assert_allclose(fuse_logits(s, u, 1.0), s)
    np.testing.assert_allclose(fuse_logits(s, u, 0.0), u)
    np.testing.assert_allclose(fuse_logits(s, u, 0.25), [-2.5, 2.0])
    with pytest.raises(ValueError):
        fuse_logits(s, u, 1.5)


def test_best_alpha_on_a_hand_made_case():
    # SAM is right on the target and wrong on a band (+3); the specialist is right everywhere.
    # On the band the fused logit is 3α − 5(1 − α) = 8α − 5 > 0 only for α > 0.625, so every α
    # up to 0.6 is perfect, and ties go to the largest.
    target = np.zeros((8, 8), bool)
    target[2:6, 2:6] = True
    band = np.zeros_like(target)
    band[6:8] = True
    sam = np.where(target | band, 3.0, -2.0)
    spec = np.where(target, 1.0, -5.0)
    grid = AuxOLConfig().alpha_grid
    assert len(grid) == 21 and grid[0] == 0.0 and grid[-1] == 1.0
    assert best_alpha(sam, spec, target, grid) == pytest.approx(0.6)
    # when SAM is perfect and the specialist is wrong, α = 1
    assert best_alpha(np.where(target, 2.0, -2.0), -spec, target, grid) == 1.0


def test_sam_alone_until_enough_cases_then_mean_of_the_last_best_alphas():
    rng = np.random.default_rng(1)
    aux = AuxOL(SMALL)
    image, sam, gt = _case(rng)
    fused = aux.fuse(image, _box(gt), sam)
    assert fused.sam_only and fused.alpha == 1.0
    np.testing.assert_array_equal(fused.mask, sam > 0)
    best = []
    for k in range(5):
        assert (aux.alpha is None) == (k < SMALL.alpha_cases)
        image, sam, gt = _case(rng)
        best.append(aux.update(image, _box(gt), sam, gt).best_alpha)
    assert aux.alpha == pytest.approx(np.mean(best[-SMALL.alpha_cases :]))
    assert len(aux.fifo) == SMALL.fifo_size and aux.cases == 5


def test_one_adamw_step_per_update_on_the_fifo_batch():
    rng = np.random.default_rng(2)
    aux = AuxOL(SMALL)
    assert aux.opt.defaults["lr"] == 5e-4 and aux.opt.defaults["weight_decay"] == 5e-4
    before = [p.detach().clone() for p in aux.net.parameters()]
    image, sam, gt = _case(rng)
    report = aux.update(image, _box(gt), sam, gt)
    assert report.batch == 1
    steps = {int(s["step"]) for s in aux.opt.state_dict()["state"].values()}
    assert steps == {1}
    assert any(not torch.equal(a, b) for a, b in zip(before, aux.net.parameters(), strict=True))
    for _ in range(6):
        image, sam, gt = _case(rng)
        report = aux.update(image, _box(gt), sam, gt)
    assert report.batch == SMALL.fifo_size  # FIFO capped: the oldest crops were dropped
    assert {int(s["step"]) for s in aux.opt.state_dict()["state"].values()} == {7}


def test_online_learning_corrects_a_systematic_sam_error():
    # SAM always over-segments by a band; after some corrected cases the fused mask is better.
    rng = np.random.default_rng(3)
    cfg = AuxOLConfig(crop_size=32, widths=(8, 16), fifo_size=8, alpha_cases=5, seed=1)
    aux = AuxOL(cfg)
    aux.opt.param_groups[0]["lr"] = 5e-3  # the same rule, fewer cases needed in a unit test
    for _ in range(60):
        image, sam, gt = _case(rng)
        aux.update(image, _box(gt), sam, gt)
    sam_dice, fused_dice = [], []
    for _ in range(8):
        image, sam, gt = _case(rng)
        fused = aux.fuse(image, _box(gt), sam)
        assert not fused.sam_only and fused.alpha < 1.0
        for out, m in ((sam_dice, sam > 0), (fused_dice, fused.mask)):
            out.append(2 * (m & gt).sum() / (m.sum() + gt.sum()))
    assert np.mean(fused_dice) > np.mean(sam_dice) + 0.1, (sam_dice, fused_dice)


def test_fusion_only_changes_the_crop_window():
    rng = np.random.default_rng(4)
    aux = AuxOL(SMALL)
    for _ in range(SMALL.alpha_cases):
        aux.update(*_args(rng))
    image, sam, gt = _case(rng, size=96)
    sam[80:, 80:] = 5.0  # far from the box: SAM's mask must stay there
    fused = aux.fuse(image, _box(gt), sam)
    y0, y1, x0, x1 = fused.window
    outside = np.ones_like(gt)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(fused.mask[outside], (sam > 0)[outside])


def _args(rng: np.random.Generator) -> tuple:
    image, sam, gt = _case(rng)
    return image, _box(gt), sam, gt


def test_save_and_load_resume_exactly(tmp_path):
    rng = np.random.default_rng(5)
    aux = AuxOL(SMALL)
    for _ in range(5):
        aux.update(*_args(rng))
    path = aux.save(tmp_path / "auxol.pt")
    again = AuxOL.load(path)
    assert again.cfg == aux.cfg and list(again.alphas) == list(aux.alphas)
    assert again.cases == aux.cases and len(again.fifo) == len(aux.fifo)
    nxt = _args(np.random.default_rng(9))
    np.testing.assert_array_equal(aux.fuse(*nxt[:3]).mask, again.fuse(*nxt[:3]).mask)
    r1, r2 = aux.update(*nxt), again.update(*nxt)
    assert r1 == r2
    for a, b in zip(aux.net.parameters(), again.net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_inherit_keeps_the_specialist_and_clears_alpha(tmp_path):
    rng = np.random.default_rng(6)
    aux = AuxOL(SMALL)
    for _ in range(4):
        aux.update(*_args(rng))
    child = aux.inherit()
    assert child.alpha is None and len(child.fifo) == len(aux.fifo) and child.cases == 4
    for a, b in zip(aux.net.parameters(), child.net.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_bad_state_files_and_configs_are_clear_errors(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a state")
    with pytest.raises(ConfigError, match="not a readable AuxOL state"):
        AuxOL.load(bad)
    with pytest.raises(ConfigError, match="multiple of"):
        AuxOLConfig(crop_size=100)
