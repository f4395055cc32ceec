"""Pre-training a small SAM base: the stand-in for Meta's public checkpoint on this machine.

No SAM weights can be downloaded here, so the demo's SAM base is trained from scratch as a
*generic promptable segmenter*: every SAM parameter is trained on phantom label maps with
prompts derived from the ground truth (jittered boxes, positive/negative points, and blurred,
shifted CAM-like mask logits), with Dice + BCE on the best of three masks and an MSE on the IoU
head. Target structures (``exclude``) are left out, so the base never sees a mask of what the
ADA-SAM stage will learn from few labels, as Meta's SAM never saw our structures.

Output: ``sam_base.safetensors`` with plain segment-anything keys, usable as ``--sam-base``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from scipy import ndimage
from tqdm import tqdm

from adasam.config import SamConfig
from adasam.frame import ModelFrame
from adasam.prompts import cam_region, cam_to_mask_logits, mask_to_box
from adasam.sam import build_sam
from adasam.training.data import SliceSet, jitter_intensity, random_affine, warp
from adasam.training.losses import dice_bce_per_item, mask_iou
from adasam.training.model import jitter_box


@dataclass(frozen=True)
class PretrainConfig:
    out: str
    minutes: float = 15.0
    max_steps: int | None = None
    batch_size: int = 8
    prompts_per_image: int = 3
    lr: float = 8e-4
    weight_decay: float = 1e-4
    min_area: int = 20
    seed: int = 0
    threads: int = 0
    init: str | None = None


def cam_like_logits(
    mask: np.ndarray,
    frame: ModelFrame,
    rng: np.random.Generator,
    threshold: float = 0.4,
    gain: float = 10.0,
) -> torch.Tensor:
    """A blurred, shifted, rescaled version of ``mask`` made into a mask prompt as the CAM
    path makes it (``(1, 1, L, L)`` logits)."""
    h, w = mask.shape
    sigma = rng.uniform(2.0, 10.0)
    shift = rng.normal(0, 0.04 * max(h, w), 2)
    blur = ndimage.gaussian_filter(ndimage.shift(mask.astype(np.float32), shift, order=0), sigma)
    blur = blur / max(float(blur.max()), 1e-6)
    region = cam_region(blur, threshold)
    return cam_to_mask_logits(
        torch.from_numpy(blur)[None], torch.from_numpy(region)[None], frame, threshold, gain
    )


def _prompts(
    masks: list[np.ndarray], frame: ModelFrame, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Boxes (always, jittered), mask logits (70%) and points (50%) for one image's masks."""
    size = masks[0].shape[0]
    boxes = np.stack(
        [
            jitter_box(mask_to_box(m), size, rng, rng.uniform(0.0, 0.2))  # type: ignore[arg-type]
            for m in masks
        ]
    )
    box_t = torch.as_tensor(frame.boxes_to_model(boxes), dtype=torch.float32)
    mask_t = None
    if rng.random() < 0.7:
        mask_t = torch.cat([cam_like_logits(m, frame, rng) for m in masks])
    pts = None
    if rng.random() < 0.5:
        coords, labels = [], []
        for m in masks:
            inside = np.argwhere(m)
            outside = np.argwhere(~m & ndimage.binary_dilation(m, iterations=6))
            p = inside[rng.integers(len(inside))]
            q = outside[rng.integers(len(outside))] if len(outside) else p
            coords.append([[p[1], p[0]], [q[1], q[0]]])
            labels.append([1, 0 if len(outside) else 1])
        pts = (
            torch.as_tensor(frame.points_to_model(np.array(coords, float)), dtype=torch.float32),
            torch.as_tensor(labels),
        )
    return box_t, mask_t, pts  # type: ignore[return-value]


def pretrain_sam(
    data: Sequence[SliceSet],
    cfg: PretrainConfig,
    exclude: Sequence[str],
    sam_cfg: SamConfig | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Train a plain small SAM on all label values except ``exclude``; writes ``cfg.out``."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    sam_cfg = sam_cfg or SamConfig()
    sam = build_sam(sam_cfg).train()
    if cfg.init:
        from safetensors.torch import load_file

        from adasam.sam import load_strict

        load_strict(sam, load_file(cfg.init), f"SAM base {cfg.init}")
    size = data[0].images.shape[1]
    frame = ModelFrame.for_sam((size, size), sam_cfg)
    pools = []
    for ds in data:
        banned = {ds.label_values[n] for n in exclude if n in ds.label_values}
        values = sorted(set(ds.meta.get("all_labels", [])) - banned - {0})  # type: ignore[arg-type]
        pools.append((ds, values))
    opt = torch.optim.AdamW(sam.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    deadline = time.perf_counter() + cfg.minutes * 60
    step, history = 0, []
    total = cfg.max_steps or 10**9
    bar = tqdm(
        total=None if cfg.max_steps is None else total,
        disable=not progress,
        desc="pretrain SAM",
        unit="step",
    )
    while step < total and time.perf_counter() < deadline:
        ds, values = pools[step % len(pools)]
        idx = rng.integers(0, len(ds), cfg.batch_size)
        x = torch.from_numpy(ds.images[idx]).permute(0, 3, 1, 2).float()
        lab = torch.from_numpy(ds.labels[idx].astype(np.float32))[:, None]
        theta = random_affine(len(idx), gen, rotate_deg=15, scale=(0.85, 1.15))
        x = jitter_intensity(warp(x, theta), gen)
        lab_np = warp(lab, theta, nearest=True)[:, 0].round().to(torch.uint8).numpy()
        emb = sam.image_encoder(sam.preprocess(frame.resize_input(x)))
        losses = []
        for b in range(len(idx)):
            cands = [v for v in values if (lab_np[b] == v).sum() >= cfg.min_area]
            if not cands:
                continue
            chosen = rng.choice(cands, min(cfg.prompts_per_image, len(cands)), replace=False)
            masks = [lab_np[b] == v for v in chosen]
            box_t, mask_t, pts = _prompts(masks, frame, rng)
            sparse, dense = sam.prompt_encoder(points=pts, boxes=box_t, masks=mask_t)
            low, iou = sam.mask_decoder(
                image_embeddings=emb[b : b + 1],
                image_pe=sam.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=True,
            )
            full = frame.lowres_to_original(low)
            target = torch.from_numpy(np.stack(masks))[:, None]
            n, k = full.shape[:2]
            per = dice_bce_per_item(
                full.flatten(0, 1), target.expand(-1, k, -1, -1).flatten(0, 1)
            ).view(n, k)
            with torch.no_grad():
                true_iou = mask_iou(full, target)
            losses.append(per.min(1).values.mean() + 0.5 * ((iou - true_iou) ** 2).mean())
        if not losses:
            continue
        loss = torch.stack(losses).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        history.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(history[-20:]):.3f}")
    bar.close()
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in sam.state_dict().items()}
    save_file(state, str(out), {"excluded": json.dumps(list(exclude)), "steps": str(step)})
    summary = {
        "steps": step,
        "final_loss": float(np.mean(history[-20:])) if history else None,
        "excluded": list(exclude),
        "config": asdict(cfg),
        "sam": asdict(sam_cfg),
    }
    out.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
