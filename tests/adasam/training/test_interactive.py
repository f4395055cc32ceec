"""Interactive (click) training on cached embeddings, with a tiny in-process SAM."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adasam.clicks import next_click
from adasam.frame import ModelFrame
from adasam.prompts import mask_to_box
from adasam.sam import build_sam
from adasam.training import interactive as it
from adasam.training.interactive import (
    FirstPrompt,
    InteractiveConfig,
    InteractiveItem,
    distillation_loss,
    first_prompt,
    frozen_copy,
    interactive_losses,
    random_boxes,
    sample_click,
)
from tests.conftest import TINY_SAM

SAM64 = replace(TINY_SAM, image_size=64)  # 8×8 embedding, 32×32 low-res masks
S = 32  # original slice size
YY, XX = np.mgrid[:S, :S]


def _disk(cx: float, cy: float, r: float) -> np.ndarray:
    return (YY - cy) ** 2 + (XX - cx) ** 2 <= r**2


def _frame() -> ModelFrame:
    return ModelFrame((S, S), SAM64.image_size, SAM64.mask_size)


def _sam(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_sam(SAM64)


def test_one_decoder_call_for_items_of_different_images_matches_per_image_calls() -> None:
    sam = _sam()
    emb = torch.randn(2, 32, 8, 8)
    boxes = torch.tensor([[4.0, 4, 40, 40], [10, 20, 50, 60]])
    pe = sam.prompt_encoder
    sparse, dense = pe(points=None, boxes=boxes, masks=None)
    with torch.no_grad():
        low, iou = it._decode(sam, emb, sparse, dense, True)
        for i in range(2):
            ref_low, ref_iou = sam.mask_decoder(
                image_embeddings=emb[i : i + 1],
                image_pe=pe.get_dense_pe(),
                sparse_prompt_embeddings=sparse[i : i + 1],
                dense_prompt_embeddings=dense[i : i + 1],
                multimask_output=True,
            )
            torch.testing.assert_close(low[i : i + 1], ref_low, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(iou[i : i + 1], ref_iou, atol=1e-5, rtol=1e-4)


def test_sampled_clicks_land_in_the_error_region_with_the_right_sign() -> None:
    gt = _disk(16, 16, 8)
    pred = _disk(12, 16, 8)  # shifted left: misses the right part, adds on the left
    rng = np.random.default_rng(0)
    clicks = [sample_click(pred, gt, rng) for _ in range(50)]
    assert all(c is not None for c in clicks)
    for c in clicks:
        r, col = int(c.y), int(c.x)
        assert (
            (gt[r, col] and not pred[r, col]) if c.positive else (pred[r, col] and not gt[r, col])
        )
    assert {c.positive for c in clicks} == {True, False}
    assert sample_click(gt, gt, rng) is None
    assert sample_click(pred, gt, rng, "ritm") == next_click(pred, gt)


def test_first_prompts_follow_the_weights_and_need_a_structure() -> None:
    gt = _disk(16, 16, 6)
    rng = np.random.default_rng(0)
    point = first_prompt(gt, rng, InteractiveConfig(p_box=0, p_jitter_box=0, p_point=1, p_cam=0))
    assert point.kind == "point" and gt[int(point.points[0, 1]), int(point.points[0, 0])]
    box = first_prompt(gt, rng, InteractiveConfig(p_box=1, p_jitter_box=0, p_point=0, p_cam=0))
    np.testing.assert_array_equal(box.box, mask_to_box(gt))
    only_cam = InteractiveConfig(p_box=0, p_jitter_box=0, p_point=0, p_cam=1)
    assert first_prompt(gt, rng, only_cam).kind == "box"  # no CAM given: falls back to the box
    cam = first_prompt(
        gt, rng, only_cam, cam_box=np.array([5.0, 5, 25, 25]), cam_logits=torch.zeros(32, 32)
    )
    assert cam.kind == "cam" and cam.mask_logits is not None
    jit = first_prompt(gt, rng, InteractiveConfig(p_box=0, p_jitter_box=1, p_point=0, p_cam=0))
    assert jit.kind == "jitter_box" and (jit.box >= 0).all() and (jit.box <= S - 1).all()
    with pytest.raises(ValueError, match="non-empty"):
        first_prompt(np.zeros((S, S), bool), rng, InteractiveConfig())
    with pytest.raises(ValueError):
        InteractiveConfig(rounds=-1)
    with pytest.raises(ValueError):
        InteractiveConfig(click_sampling="always")  # type: ignore[arg-type]


def test_rounds_mixed_prompts_and_gradients() -> None:
    sam = _sam()
    sam.train()
    frames = [_frame(), _frame()]
    emb = torch.randn(2, 32, 8, 8)
    a, b = _disk(10, 10, 5), _disk(20, 22, 7)
    cam = torch.full((32, 32), -4.0, requires_grad=True)
    items = [
        InteractiveItem(0, a, FirstPrompt("box", box=np.asarray(mask_to_box(a), float))),
        InteractiveItem(1, b, FirstPrompt("point", points=np.array([[20.0, 22.0]]))),
        InteractiveItem(1, a, FirstPrompt("cam", box=np.array([4.0, 4, 16, 16]), mask_logits=cam)),
    ]
    cfg = InteractiveConfig(rounds=3)
    out = interactive_losses(
        sam,
        emb,
        frames,
        items,
        cfg,
        np.random.default_rng(0),
        teacher=frozen_copy(sam),
        distill=[(0, np.array([2.0, 2, 30, 30]))],
    )
    assert len(out.rounds) == 4 and len(out.ious) == 4
    assert torch.isfinite(out.total) and out.distill is not None
    assert float(out.distill.detach()) == pytest.approx(0.0, abs=1e-10)  # an exact copy
    out.total.backward()
    assert sam.mask_decoder.iou_token.weight.grad is not None
    assert cam.grad is not None and cam.grad.abs().sum() > 0  # reaches the CAM prompt
    with pytest.raises(ValueError, match="gt shape"):
        interactive_losses(
            sam,
            emb,
            frames,
            [InteractiveItem(0, a[:-1], items[0].first)],
            cfg,
            np.random.default_rng(0),
        )


def test_distillation_measures_drift_from_the_base() -> None:
    sam = _sam()
    teacher = frozen_copy(sam)
    emb = torch.randn(2, 32, 8, 8)
    boxes = [(b, box) for b in (0, 1) for box in random_boxes((S, S), np.random.default_rng(b), 2)]
    assert all(0 <= bx[0] <= bx[2] <= S - 1 for _, bx in boxes)
    assert float(distillation_loss(sam, teacher, emb, [_frame()] * 2, boxes)) < 1e-10
    with torch.no_grad():
        sam.mask_decoder.iou_token.weight.add_(1.0)
    drift = distillation_loss(sam, teacher, emb, [_frame()] * 2, boxes)
    assert float(drift) > 1e-4
    assert not any(p.requires_grad for p in teacher.parameters())


def _scenes(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two separate disks per scene."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        c = rng.uniform(0.2 * S, 0.8 * S, (2, 2))
        r = rng.uniform(0.1, 0.16, 2) * S
        if np.hypot(*(c[0] - c[1])) > r.sum() + 0.1 * S:
            out.append((_disk(*c[0], r[0]), _disk(*c[1], r[1])))
    return out


def _embed(scenes: list, seed: int) -> torch.Tensor:
    """Toy cached embeddings: both disks (alike) in 8 channels, noise in all 32."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for a, b in scenes:
        e = torch.randn(32, 8, 8, generator=g) * 0.3
        e[:8] += (
            F.adaptive_avg_pool2d(torch.tensor((a | b)[None, None], dtype=torch.float32), 8)[0] * 2
        )
        out.append(e)
    return torch.stack(out)


def _centre(m: np.ndarray) -> np.ndarray:
    c = next_click(np.zeros_like(m), m)
    return np.array([[c.x, c.y]])


def _both(b: int, scene: tuple, rng: np.random.Generator) -> InteractiveItem:
    """A point on one disk, both wanted: only a click can say so."""
    return InteractiveItem(
        b, scene[0] | scene[1], FirstPrompt("point", points=_centre(scene[int(rng.integers(2))]))
    )


def _one(b: int, scene: tuple, rng: np.random.Generator) -> InteractiveItem:
    """A box around both, one wanted: only a (negative) click can say which."""
    box = np.asarray(mask_to_box(scene[0] | scene[1]), float)
    return InteractiveItem(b, scene[int(rng.integers(2))], FirstPrompt("box", box=box))


def _mean_ious(sam: torch.nn.Module, emb: torch.Tensor, scenes: list, mode: str) -> list[float]:
    sam.eval()
    rng = np.random.default_rng(0)
    items = [_both(b, s, rng) for b, s in enumerate(scenes)]
    cfg = InteractiveConfig(rounds=2, click_sampling=mode)  # type: ignore[arg-type]
    with torch.no_grad():
        out = interactive_losses(sam, emb, [_frame()] * len(scenes), items, cfg, rng)
    sam.train()
    return out.ious


def test_short_training_lowers_the_loss_and_the_rounds_raise_iou() -> None:
    """30 steps on toy data: the loss falls and the corrective rounds take the mask from nothing
    to half the target. (Whether the clicks themselves carry the gain is not shown at this size:
    rounds without new clicks gained as much in the runs made here; see the module's note.)"""
    train, test = _scenes(32, 1), _scenes(12, 2)
    e_train, e_test = _embed(train, 0), _embed(test, 1)
    sam = _sam(0)
    before = _mean_ious(sam, e_test, test, "ritm")
    params = [*sam.prompt_encoder.parameters(), *sam.mask_decoder.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    cfg = InteractiveConfig(rounds=2)
    rng = np.random.default_rng(0)
    sam.train()
    losses = []
    for _ in range(30):
        idx = rng.choice(len(train), 8, replace=False)
        kinds = rng.choice(3, 8)
        items = [
            (_both, _one, lambda j, s, r: InteractiveItem(j, s[0], first_prompt(s[0], r, cfg)))[k](
                j, train[b], rng
            )
            for j, (b, k) in enumerate(zip(idx, kinds, strict=True))
        ]
        out = interactive_losses(sam, e_train[idx], [_frame()] * 8, items, cfg, rng)
        opt.zero_grad()
        out.total.backward()
        opt.step()
        losses.append(float(out.total.detach()))
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])
    after = _mean_ious(sam, e_test, test, "ritm")
    assert after[2] >= before[2] + 0.3, (before, after)
    # the corrective rounds must not lower IoU; how much they add depends on how good the first
    # round already is at this size (0.06 to 0.45 in runs made here), so no margin is claimed
    assert after[2] >= after[0], after
