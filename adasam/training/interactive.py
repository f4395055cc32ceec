"""Interactive (click) training of SAM's prompt encoder and mask decoder, on cached embeddings.

SAM's own recipe (Kirillov et al. 2023, §3 and appendix A): a first prompt (a box, a jittered
box, one point, or here also the CAM mask prompt), then rounds in which a corrective click is
drawn from the error region of the current prediction (positive in a missed region, negative in
a false one) and the previous low-resolution logits are fed back as the dense mask prompt; a
loss on every round. The first round uses the three-mask output with the loss of the best of
the three (SAM's ambiguity-aware loss); later rounds the single-mask output. Every round also
trains the IoU head (MSE against the true IoU), because the studio's refinement guard trusts its
score. A distillation term against a frozen copy of the base on box prompts keeps the box-only
behaviour; it needs no labels, so unlabeled slices take part with random boxes.

Everything works on precomputed image embeddings, so the (slow) image encoder runs once per
slice and can be cached (LiteMedSAM's TinyViT costs ~2 s per slice on the 2-core CPU).

Typical use in a training loop (``sam`` trainable, ``base`` = :func:`frozen_copy` of it taken
before interactive training started, ``emb`` a cached ``(B, C, h, w)`` batch, one
:class:`~adasam.frame.ModelFrame` per slice, ``gt[b][t]`` bool ``(H, W)`` masks)::

    items = [
        InteractiveItem(b, gt[b][t], first_prompt(gt[b][t], rng, cfg, cam_box=..., cam_logits=...))
        for b, t in labeled_pairs
    ]
    boxes = [(b, box) for b in unlabeled for box in random_boxes(frames[b].original_hw, rng, 2)]
    out = interactive_losses(sam, emb, frames, items, cfg, rng, teacher=base, distill=boxes)
    (out.total).backward()   # out.rounds[k]: loss of round k; out.ious[k]: its mean IoU

Status (2026-12-01): the mechanics are tested (one decoder call batches items of different
images exactly, gradients reach the decoder and a CAM mask prompt, distillation is zero against
an exact copy) and 30 toy steps lower the loss; on that toy, rounds without new clicks gained as
much IoU as rounds with clicks, so that clicks carry information after a *short* training is not
shown yet. The real check is ``evaluate``'s click protocol on a bundle trained with this.

Conventions: masks are bool ``(H, W)`` at the slice's original size; boxes XYXY and clicks
``(x, y)`` in original pixels (converted with the item's frame); low-resolution logits are
``(mask_size, mask_size)`` in SAM's padded frame.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adasam.clicks import next_click, padded_distance
from adasam.frame import ModelFrame
from adasam.predictor import Click
from adasam.prompts import mask_to_box
from adasam.training.losses import consistency_loss, dice_bce_per_item, mask_iou
from adasam.training.model import jitter_box

ClickSampling = Literal["random", "ritm", "none"]
PROMPT_KINDS = ("box", "jitter_box", "point", "cam")


@dataclass(frozen=True)
class InteractiveConfig:
    """Interactive training settings (validated; help text in each field's metadata)."""

    rounds: int = field(
        default=3, metadata={"help": "corrective clicks after the first prompt (≥ 0)"}
    )
    p_box: float = field(default=0.3, metadata={"help": "first prompt: exact GT box (weight)"})
    p_jitter_box: float = field(
        default=0.3, metadata={"help": "first prompt: GT box, sides moved by up to `jitter`"}
    )
    p_point: float = field(
        default=0.2, metadata={"help": "first prompt: one positive point inside the structure"}
    )
    p_cam: float = field(
        default=0.2,
        metadata={"help": "first prompt: CAM box + CAM mask prompt (only where one is given)"},
    )
    jitter: float = field(default=0.1, metadata={"help": "box jitter, fraction of its size"})
    click_sampling: ClickSampling = field(
        default="random",
        metadata={
            "help": "'random': clicks drawn from the error region, weighted by the distance to "
            "its boundary (training); 'ritm': the evaluation rule of adasam.clicks; 'none': "
            "rounds without a new click (only the previous logits are fed back; an ablation)"
        },
    )
    p_ritm: float = field(
        default=0.25,
        metadata={"help": "with 'random', the share of clicks placed by the RITM rule instead"},
    )
    w_iou: float = field(default=1.0, metadata={"help": "weight of the IoU-head MSE"})
    w_distill: float = field(default=1.0, metadata={"help": "weight of box distillation"})

    def __post_init__(self) -> None:
        if self.rounds < 0:
            raise ValueError(f"rounds must be ≥ 0, got {self.rounds}")
        weights = (self.p_box, self.p_jitter_box, self.p_point, self.p_cam)
        if min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"first-prompt weights must be ≥ 0 and not all 0, got {weights}")
        if self.click_sampling not in ("random", "ritm", "none"):
            raise ValueError(
                f"click_sampling must be 'random', 'ritm' or 'none', got {self.click_sampling!r}"
            )
        for name in ("jitter", "p_ritm"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.w_iou < 0 or self.w_distill < 0:
            raise ValueError("w_iou and w_distill must be ≥ 0")


@dataclass(frozen=True)
class FirstPrompt:
    """The first prompt of one item (original pixels).

    Attributes:
        kind: one of ``PROMPT_KINDS``.
        box: XYXY float box or None.
        points: float ``(K, 2)`` XY points (label 1) or None.
        mask_logits: float ``(mask_size, mask_size)`` dense mask prompt (the CAM prompt; may
            carry gradient to the classifier) or None.
    """

    kind: str
    box: np.ndarray | None = None
    points: np.ndarray | None = None
    mask_logits: torch.Tensor | None = None


@dataclass(frozen=True)
class InteractiveItem:
    """One (slice, structure) to train on: ``image`` indexes the embeddings and frames; ``gt``
    is the bool ``(H, W)`` ground truth at that frame's original size (must not be empty)."""

    image: int
    gt: np.ndarray
    first: FirstPrompt


@dataclass
class InteractiveResult:
    """``total``: weighted scalar loss to backpropagate; ``rounds[k]``: the (Dice + BCE +
    ``w_iou`` · IoU-MSE) loss of round k (0 = first prompt; detached for a round outside
    ``grad_rounds``); ``distill``: the distillation term (None without a teacher); ``ious[k]``:
    mean IoU with the ground truth after round k (binarised, original size; for monitoring);
    ``item_ious[k][i]``: item i's IoU after round k."""

    total: torch.Tensor
    rounds: list[torch.Tensor]
    distill: torch.Tensor | None
    ious: list[float]
    item_ious: list[list[float]] = field(default_factory=list)


def frozen_copy(sam: nn.Module) -> nn.Module:
    """A frozen (eval, no grad) copy of ``sam``'s prompt encoder and mask decoder, the teacher
    of the distillation term. Take it before interactive training starts."""
    teacher = nn.Module()
    teacher.prompt_encoder = copy.deepcopy(sam.prompt_encoder)
    teacher.mask_decoder = copy.deepcopy(sam.mask_decoder)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def random_boxes(
    hw: tuple[int, int], rng: np.random.Generator, n: int, min_frac: float = 0.1
) -> list[np.ndarray]:
    """``n`` random XYXY boxes inside an ``(H, W)`` image, each side at least ``min_frac`` of
    the image's: distillation prompts for slices without labels."""
    h, w = hw
    out = []
    for _ in range(n):
        bw, bh = rng.uniform(min_frac, 1.0) * w, rng.uniform(min_frac, 1.0) * h
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        out.append(np.array([x0, y0, min(x0 + bw, w - 1), min(y0 + bh, h - 1)], np.float64))
    return out


def sample_click(
    pred: np.ndarray,
    gt: np.ndarray,
    rng: np.random.Generator,
    mode: Literal["random", "ritm"] = "random",
) -> Click | None:
    """A corrective click on bool ``(H, W)`` ``pred`` given ``gt``.

    ``"ritm"``: :func:`adasam.clicks.next_click`. ``"random"``: a pixel of the error region
    drawn with probability proportional to its distance from the region's boundary (the image
    border counting as boundary), so big regions and their interiors are favoured but every
    error can be picked; positive when it lies in the missed region. None: no error.
    """
    if mode == "ritm":
        return next_click(pred, gt)
    fn, fp = gt & ~pred, pred & ~gt
    weight = (padded_distance(fn) + padded_distance(fp)).ravel().astype(np.float64)
    total = weight.sum()
    if total <= 0:
        return None
    k = int(rng.choice(weight.size, p=weight / total))
    row, col = divmod(k, pred.shape[1])
    return Click(float(col), float(row), bool(fn[row, col]))


def first_prompt(
    gt: np.ndarray,
    rng: np.random.Generator,
    cfg: InteractiveConfig,
    *,
    cam_box: np.ndarray | None = None,
    cam_logits: torch.Tensor | None = None,
) -> FirstPrompt:
    """Draw one item's first prompt from bool ``(H, W)`` ``gt`` (non-empty) by the config's
    weights; ``cam`` only where ``cam_box`` and ``cam_logits`` are given."""
    box = mask_to_box(gt)
    if box is None:
        raise ValueError("interactive training needs a non-empty ground-truth mask")
    has_cam = cam_box is not None and cam_logits is not None
    w = np.array([cfg.p_box, cfg.p_jitter_box, cfg.p_point, cfg.p_cam if has_cam else 0.0])
    if w.sum() <= 0:
        w = np.array([1.0, 0.0, 0.0, 0.0])
    kind = PROMPT_KINDS[int(rng.choice(4, p=w / w.sum()))]
    if kind == "box":
        return FirstPrompt(kind, box=np.asarray(box, np.float64))
    if kind == "jitter_box":
        side = max(gt.shape)
        jb = jitter_box(np.asarray(box, np.float64), side, rng, cfg.jitter)
        jb[[0, 2]] = np.clip(jb[[0, 2]], 0, gt.shape[1] - 1)
        jb[[1, 3]] = np.clip(jb[[1, 3]], 0, gt.shape[0] - 1)
        return FirstPrompt(kind, box=jb)
    if kind == "point":
        c = sample_click(np.zeros_like(gt), gt, rng, "random")
        assert c is not None  # gt is not empty
        return FirstPrompt(kind, points=np.array([[c.x, c.y]], np.float64))
    return FirstPrompt(kind, box=np.asarray(cam_box, np.float64), mask_logits=cam_logits)


@dataclass
class _State:
    """One item's progress through the rounds."""

    item: InteractiveItem
    gt_t: torch.Tensor
    clicks: list[Click | None] = field(default_factory=list)
    prev: torch.Tensor | None = None
    mask: np.ndarray | None = None


def _dense(pe: nn.Module, masks: Sequence[torch.Tensor | None], n: int) -> torch.Tensor:
    """Dense prompt embeddings ``(n, C, h, w)``: the mask prompt where given, SAM's no-mask
    embedding elsewhere."""
    none = pe(points=None, boxes=None, masks=None)[1].expand(n, -1, -1, -1)
    idx = [i for i, m in enumerate(masks) if m is not None]
    if not idx:
        return none
    stacked = torch.stack([masks[i] for i in idx])[:, None].to(none.dtype)  # type: ignore[misc]
    given = pe(points=None, boxes=None, masks=stacked)[1]
    if len(idx) == n:
        return given
    out = none.clone()
    out[idx] = given.to(out.dtype)  # a bf16 conv output under autocast
    return out


def _prompts(
    pe: nn.Module, frame: ModelFrame, states: Sequence[_State], first_round: bool, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse and dense prompt embeddings of a group sharing one image and prompt layout."""
    firsts = [s.item.first for s in states]
    boxes = None
    if firsts[0].box is not None:
        b = frame.boxes_to_model(np.stack([f.box for f in firsts]))  # type: ignore[misc]
        boxes = torch.as_tensor(b, dtype=torch.float32, device=dev)
    pts, labels = [], []
    for s in states:
        p = [] if s.item.first.points is None else [tuple(xy) for xy in s.item.first.points]
        lab = [1] * len(p)
        for c in s.clicks:
            p.append((0.0, 0.0) if c is None else (c.x, c.y))
            lab.append(-1 if c is None else int(c.positive))
        pts.append(p)
        labels.append(lab)
    points = None
    if pts[0]:
        xy = frame.points_to_model(np.asarray(pts, np.float64))
        points = (
            torch.as_tensor(xy, dtype=torch.float32, device=dev),
            torch.as_tensor(labels, dtype=torch.int64, device=dev),
        )
    sparse = pe(points=points, boxes=boxes, masks=None)[0]
    masks = [s.item.first.mask_logits if first_round else s.prev for s in states]
    return sparse, _dense(pe, masks, len(states))


def _groups(
    states: Sequence[_State], frames: Sequence[ModelFrame]
) -> dict[tuple[ModelFrame, bool, int], list[int]]:
    """Items that can share one decoder call: same frame, box or not, same point count."""
    out: dict[tuple[ModelFrame, bool, int], list[int]] = {}
    for i, s in enumerate(states):
        f = s.item.first
        key = (frames[s.item.image], f.box is not None, 0 if f.points is None else len(f.points))
        out.setdefault(key, []).append(i)
    return out


def _decode(
    sam: nn.Module,
    embeddings: torch.Tensor,
    sparse: torch.Tensor,
    dense: torch.Tensor,
    multimask: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's mask decoder on one prompt set per item, items from different images at once.

    ``embeddings`` is ``(n, C, h, w)``, one per item. segment-anything's decoder adds the dense
    prompt to the (single) image embedding it repeats per item, so passing a zero image
    embedding and ``dense + embeddings`` gives exactly the per-item sums in one call.
    """
    return sam.mask_decoder(
        image_embeddings=torch.zeros_like(embeddings[:1]),
        image_pe=sam.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense + embeddings,
        multimask_output=multimask,
    )


def _round(
    sam: nn.Module,
    embeddings: torch.Tensor,
    frames: Sequence[ModelFrame],
    states: Sequence[_State],
    first_round: bool,
    w_iou: float,
) -> tuple[torch.Tensor, list[float]]:
    """Decode every item once, update its previous logits and mask; (mean loss, each item's
    IoU in ``states`` order)."""
    pe = sam.prompt_encoder
    losses: list[torch.Tensor] = []
    ious = [0.0] * len(states)
    for (frame, _, _), idx in _groups(states, frames).items():
        group = [states[i] for i in idx]
        sparse, dense = _prompts(pe, frame, group, first_round, embeddings.device)
        emb = embeddings[torch.as_tensor([s.item.image for s in group], device=embeddings.device)]
        low, iou_pred = _decode(sam, emb, sparse, dense, first_round)
        full = frame.lowres_to_original(low.float())  # (n, K, H, W)
        n, k = full.shape[:2]
        gt = torch.stack([s.gt_t for s in group])[:, None]  # (n, 1, H, W)
        seg = dice_bce_per_item(full.flatten(0, 1), gt.expand(-1, k, -1, -1).flatten(0, 1))
        seg = seg.view(n, k).min(dim=1).values  # best of three in the first round
        true_iou = mask_iou(full.detach(), gt)
        iou_mse = ((iou_pred.float() - true_iou) ** 2).mean(dim=1)
        losses.append(seg + w_iou * iou_mse)
        pick = iou_pred.detach().argmax(dim=1)  # fed back: the best-scored output, as SAM
        for j, (i, s) in enumerate(zip(idx, group, strict=True)):
            s.prev = low[j, pick[j]].detach().float()
            s.mask = (full[j, pick[j]] > 0).detach().cpu().numpy()
            ious[i] = float(true_iou[j, pick[j]])
    return torch.cat(losses).mean(), ious


def distillation_loss(
    sam: nn.Module,
    teacher: nn.Module,
    embeddings: torch.Tensor,
    frames: Sequence[ModelFrame],
    boxes: Sequence[tuple[int, np.ndarray]],
    teacher_embeddings: torch.Tensor | None = None,
) -> torch.Tensor:
    """Box-only outputs of ``sam`` against the frozen ``teacher``'s on the same boxes.

    All four mask outputs (the single mask and the three of the multimask output) are compared
    as probabilities (MSE over the image content of the low-resolution frame), and the IoU
    predictions by MSE, so both ``segment(box)`` answers keep the base's behaviour.

    Args:
        boxes: ``(image index, XYXY box in original pixels)`` pairs; no labels needed.
        teacher_embeddings: the teacher's embeddings when its encoder differs (default: the
            student's, detached).
    """
    temb = (embeddings if teacher_embeddings is None else teacher_embeddings).detach()
    by_frame: dict[ModelFrame, list[tuple[int, np.ndarray]]] = {}
    for b, box in boxes:
        by_frame.setdefault(frames[b], []).append((b, np.asarray(box, np.float64)))
    total, count = embeddings.new_zeros(()), 0
    for frame, pairs in by_frame.items():
        dev = embeddings.device
        box_t = torch.as_tensor(
            frame.boxes_to_model(np.stack([bx for _, bx in pairs])), dtype=torch.float32, device=dev
        )
        sel = torch.as_tensor([b for b, _ in pairs], device=dev)
        outs = []
        for model, emb in ((sam, embeddings[sel]), (teacher, temb[sel])):
            with torch.set_grad_enabled(model is sam and torch.is_grad_enabled()):
                sparse, dense = model.prompt_encoder(points=None, boxes=box_t, masks=None)
                outs.append(
                    model.mask_decoder.predict_masks(  # all four outputs in one pass
                        image_embeddings=torch.zeros_like(emb[:1]),  # see _decode
                        image_pe=model.prompt_encoder.get_dense_pe(),
                        sparse_prompt_embeddings=sparse,
                        dense_prompt_embeddings=dense + emb,
                    )
                )
        (s_low, s_iou), (t_low, t_iou) = outs
        ch, cw = frame.mask_content_hw
        valid = torch.zeros_like(s_low, dtype=torch.bool)
        valid[..., :ch, :cw] = True
        term = consistency_loss(s_low, torch.sigmoid(t_low), valid) + F.mse_loss(s_iou, t_iou)
        total = total + term * len(pairs)
        count += len(pairs)
    return total / max(count, 1)


def interactive_losses(
    sam: nn.Module,
    embeddings: torch.Tensor,
    frames: Sequence[ModelFrame],
    items: Sequence[InteractiveItem],
    cfg: InteractiveConfig,
    rng: np.random.Generator,
    *,
    teacher: nn.Module | None = None,
    distill: Sequence[tuple[int, np.ndarray]] = (),
    teacher_embeddings: torch.Tensor | None = None,
    grad_rounds: Sequence[int] | None = None,
) -> InteractiveResult:
    """Run the first prompt and ``cfg.rounds`` corrective-click rounds on every item.

    Args:
        sam: a SAM (``prompt_encoder``, ``mask_decoder``) in training mode; only those two run.
        embeddings: float ``(B, C, h, w)`` image embeddings (cached; they may carry gradient
            if the encoder is trained).
        frames: one :class:`ModelFrame` per embedding (``frames[b]`` for image ``b``).
        items: the labeled (slice, structure) pairs; see :func:`first_prompt`.
        cfg: rounds, click sampling and loss weights.
        rng: drives the click sampling.
        teacher: a frozen base (:func:`frozen_copy`) for the distillation term, or None.
        distill: ``(image index, box)`` prompts for distillation (unlabeled slices welcome);
            the items' own boxes are added.
        teacher_embeddings: see :func:`distillation_loss`.
        grad_rounds: the rounds (0 … ``cfg.rounds``) whose loss enters ``total``; the others
            run without a gradient (they only move the simulated user on, a saving on CPU:
            the fed-back logits are detached, so no round's loss depends on another's graph).
            None: every round.

    Returns:
        :class:`InteractiveResult`: ``total = mean(kept rounds) + w_distill · distill``.
    """
    if not items:
        raise ValueError("interactive training needs at least one item")
    if len(frames) != embeddings.shape[0]:
        raise ValueError(f"{len(frames)} frames for {embeddings.shape[0]} embeddings")
    dev = embeddings.device
    states = []
    for it in items:
        if it.gt.shape != frames[it.image].original_hw:
            raise ValueError(
                f"gt shape {it.gt.shape} is not image {it.image}'s {frames[it.image].original_hw}"
            )
        gt_t = torch.as_tensor(np.asarray(it.gt, bool), device=dev).float()
        states.append(_State(it, gt_t))
    keep = set(range(cfg.rounds + 1) if grad_rounds is None else grad_rounds)
    if not keep or not keep <= set(range(cfg.rounds + 1)):
        raise ValueError(f"grad_rounds {grad_rounds} must name rounds 0…{cfg.rounds}")
    rounds, item_ious = [], []
    for r in range(cfg.rounds + 1):
        if r:
            for s in states:
                s.clicks.append(_click(s, rng, cfg))
        with torch.set_grad_enabled(torch.is_grad_enabled() and r in keep):
            loss, per_item = _round(sam, embeddings, frames, states, r == 0, cfg.w_iou)
        rounds.append(loss if r in keep else loss.detach())
        item_ious.append(per_item)
    total = torch.stack([rounds[r] for r in sorted(keep)]).mean()
    dist = None
    if teacher is not None:
        own = [(it.image, it.first.box) for it in items if it.first.box is not None]
        dist = distillation_loss(
            sam, teacher, embeddings, frames, [*distill, *own], teacher_embeddings
        )
        total = total + cfg.w_distill * dist
    ious = [float(np.mean(v)) for v in item_ious]
    return InteractiveResult(total, rounds, dist, ious, item_ious)


def _click(state: _State, rng: np.random.Generator, cfg: InteractiveConfig) -> Click | None:
    assert state.mask is not None
    gt = np.asarray(state.item.gt, bool)
    mode = cfg.click_sampling
    if mode == "none":
        return None
    if mode == "random" and rng.random() < cfg.p_ritm:
        mode = "ritm"
    return sample_click(state.mask, gt, rng, mode)
