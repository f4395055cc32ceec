"""The gradient-feedback path: segmentation loss alone reaches the classifier (ADA-SAM), and
``--no-feedback`` (SAM-Mix) makes that gradient exactly zero."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adasam.bundle import create_bundle
from adasam.training.loop import TrainConfig, labeled_loss
from adasam.training.model import AdaSamNet, PromptPlan
from tests.conftest import TINY_SAM, tiny_config


def _batch(b: int = 3, size: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, size, size, generator=g) * 255
    masks = torch.zeros(b, 2, size, size, dtype=torch.bool)
    masks[:, 0, 10:40, 12:30] = True
    masks[:, 1, 35:60, 30:55] = True
    present = torch.ones(b, 2, dtype=torch.bool)
    return x, masks, present


def _seg_grad(feedback: bool) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    bundle = create_bundle(tiny_config(sam=TINY_SAM))
    bundle.classifier.train()
    net = AdaSamNet(bundle, 64, feedback=feedback)
    x, masks, present = _batch()
    cfg = TrainConfig(data="", out="", box_source="cam")
    losses = labeled_loss(net, x, masks, present, cfg, np.random.default_rng(0))
    assert losses["seg"].item() > 0
    bundle.classifier.zero_grad(set_to_none=True)
    bundle.sam.zero_grad(set_to_none=True)
    losses["seg"].backward()  # the segmentation loss ALONE
    return _grad(bundle.classifier.head.weight), _grad(bundle.classifier.stem[0].weight)


def _grad(p: torch.nn.Parameter) -> torch.Tensor:
    """The parameter's gradient; a parameter autograd never reached has exactly zero."""
    return torch.zeros_like(p) if p.grad is None else p.grad.clone()


def test_segmentation_gradient_reaches_classifier_with_feedback() -> None:
    head, stem = _seg_grad(feedback=True)
    assert head.abs().sum() > 0 and stem.abs().sum() > 0


def test_no_feedback_cuts_the_path_exactly() -> None:
    head, stem = _seg_grad(feedback=False)
    assert torch.count_nonzero(head) == 0 and torch.count_nonzero(stem) == 0


def test_lora_gets_gradient_and_frozen_base_does_not() -> None:
    torch.manual_seed(0)
    bundle = create_bundle(tiny_config())
    net = AdaSamNet(bundle, 64)
    x, masks, present = _batch()
    cfg = TrainConfig(data="", out="")
    labeled_loss(net, x, masks, present, cfg, np.random.default_rng(1))["seg"].backward()
    grads = {n: p.grad for n, p in bundle.sam.named_parameters()}
    assert any(g is not None and g.abs().sum() > 0 for n, g in grads.items() if "lora_B" in n)
    assert all(g is None for n, g in grads.items() if "lora_" not in n)


@pytest.mark.parametrize("batch", [1, 4])
def test_batches_of_any_size_give_one_output_per_prompt(batch: int) -> None:
    bundle = create_bundle(tiny_config())
    net = AdaSamNet(bundle, 64)
    x, masks, present = _batch(batch)
    pairs = np.argwhere(present.numpy())
    out = net(x, PromptPlan(pairs, np.ones(len(pairs), bool)), masks, np.random.default_rng(0))
    assert out.full.shape == (2 * batch, 3, 64, 64) and out.iou.shape == (2 * batch, 3)
    np.testing.assert_array_equal(out.kept, np.arange(2 * batch))


def test_optional_cam_alignment_loss_is_hand_checkable() -> None:
    from adasam.training.losses import prob_dice_loss

    t = torch.zeros(1, 4, 4)
    t[0, :2] = 1
    assert prob_dice_loss(t.clone(), t, eps=0).item() == pytest.approx(0.0)
    assert prob_dice_loss(1 - t, t, eps=0).item() == pytest.approx(1.0)
    torch.manual_seed(0)
    bundle = create_bundle(tiny_config())
    net = AdaSamNet(bundle, 64)
    x, masks, present = _batch()
    cfg = TrainConfig(data="", out="", w_cam=1.0)
    losses = labeled_loss(net, x, masks, present, cfg, np.random.default_rng(0))
    assert 0 < losses["cam"].item() <= 1
    losses["cam"].backward()
    assert bundle.classifier.head.weight.grad.abs().sum() > 0
    assert "cam" not in labeled_loss(
        net, x, masks, present, TrainConfig(data="", out=""), np.random.default_rng(0)
    )
