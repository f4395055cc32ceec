"""Losses on logits. Shapes are ``(N, ...)``; every function returns a scalar tensor."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Mean over N of ``1 − (2|p·t| + eps) / (|p| + |t| + eps)`` with ``p = σ(logits)``,
    sums over every dimension after the first."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1).to(p.dtype)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def prob_dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss on probabilities (e.g. a CAM in [0, 1]), mean over N."""
    p = prob.flatten(1)
    t = target.flatten(1).to(p.dtype)
    return (1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)).mean()


def dice_bce_per_item(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``(N,)`` soft Dice loss + mean BCE of each item."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1).to(p.dtype)
    dice = 1 - (2 * (p * t).sum(1) + eps) / (p.sum(1) + t.sum(1) + eps)
    bce = F.binary_cross_entropy_with_logits(logits.flatten(1), t, reduction="none").mean(1)
    return dice + bce


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Binary focal loss (Lin et al.), mean over elements."""
    t = target.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p = torch.sigmoid(logits)
    pt = p * t + (1 - p) * (1 - t)
    w = alpha * t + (1 - alpha) * (1 - t)
    return (w * (1 - pt) ** gamma * bce).mean()


def classification_loss(logits: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
    if kind == "focal":
        return focal_loss(logits, target)
    raise ValueError(f"classification loss must be 'bce' or 'focal', got {kind!r}")


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(N, K)`` IoU of each binarised mask ``(N, K, H, W)`` with ``target`` ``(N, 1, H, W)``."""
    pred = logits > 0
    t = target.bool()
    inter = (pred & t).flatten(2).sum(-1).float()
    union = (pred | t).flatten(2).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def consistency_loss(
    student_logits: torch.Tensor, teacher_prob: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE between ``σ(student)`` and a (detached) teacher probability map, over ``valid``."""
    diff = (torch.sigmoid(student_logits) - teacher_prob.detach()) ** 2
    if valid is None:
        return diff.mean()
    v = valid.to(diff.dtype)
    return (diff * v).sum() / v.sum().clamp(min=1)


def ramp_weight(step: int, ramp_steps: int, weight: float) -> float:
    """Sigmoid ramp-up ``w · exp(−5 (1 − t)²)`` (Laine & Aila), t = step / ramp_steps ≤ 1."""
    if ramp_steps <= 0:
        return weight
    t = min(1.0, step / ramp_steps)
    return weight * float(torch.exp(torch.tensor(-5.0 * (1 - t) ** 2)))
