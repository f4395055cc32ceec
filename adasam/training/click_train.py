"""Click training of a bundle: SAM's interactive protocol alone, on cached image embeddings.

``python -m adasam train-clicks`` starts from a trained bundle (classifier, LoRA, decoder) and
trains only SAM's prompt encoder and mask decoder with :func:`~adasam.training.interactive.
interactive_losses`: each item (a labeled slice and one of its structures) gets a first prompt
(exact box, jittered box, one point) and then ``rounds`` corrective clicks drawn from the error
region, the previous logits fed back, a loss on the rounds. A distillation term against a frozen
copy of the starting decoder, on the items' boxes and random boxes, keeps the box-only answers.
The classifier, the image encoder (and so the cached embeddings) and the domain model do not
change, so the bundle's calibration and out-of-domain check stay valid.

Why a stage of its own: a full training step costs ~3 s on two CPU cores, most of it the
classifier; the click protocol needs many decoder passes per item (one per round), so here every
step spends its time on clicks. On CPU two things cut the cost per step: bfloat16 autocast
(about 2× on AVX-512 BF16 CPUs) and ``grad_rounds``: of each item's rounds only that many, drawn
at random, carry a gradient; the others are simulated without one (the previous logits are
detached in SAM's recipe anyway, so a round's loss does not depend on earlier rounds' graphs).

Model selection uses the bundle's own validation slices (``training/split.json``): every
``val_every`` steps the RITM click rule runs ``val_clicks`` clicks from the exact box on up to
``val_items`` (slice, structure) pairs; the kept checkpoint has the lowest mean NoC@90 (ties:
the higher mean IoU over the clicks) among those whose box-only IoU is at most
``max_box_drop`` below the start's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adasam.bundle import ModelBundle, load_bundle, save_bundle, with_version
from adasam.clicks import noc
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.errors import ConfigError
from adasam.frame import ModelFrame
from adasam.training.click_config import ClickTrainConfig
from adasam.training.data import SPLIT_FILE, SliceSet, load_dataset, read_split
from adasam.training.interactive import (
    InteractiveConfig,
    InteractiveItem,
    first_prompt,
    frozen_copy,
    interactive_losses,
    random_boxes,
)

NOC_IOU = 0.90


def interactive_config(cfg: ClickTrainConfig) -> InteractiveConfig:
    """The per-item protocol (no CAM first prompts: the classifier does not run here)."""
    return InteractiveConfig(
        rounds=cfg.rounds,
        p_box=cfg.p_box,
        p_jitter_box=cfg.p_jitter_box,
        p_point=cfg.p_point,
        p_cam=0.0,
        jitter=cfg.jitter,
        p_ritm=cfg.p_ritm,
        w_distill=cfg.w_distill,
    )


@dataclass(frozen=True)
class ClickData:
    """The training and validation items: ``pairs_*`` are ``(slice, structure)`` rows with
    the structure present; ``embeddings`` float32 ``(N, C, e, e)`` of every slice."""

    data: SliceSet
    embeddings: torch.Tensor
    train: np.ndarray
    val_pairs: np.ndarray
    train_pairs: np.ndarray


@dataclass(frozen=True)
class ValScore:
    """Validation by the RITM rule from the exact box: ``noc90`` mean clicks to IoU 0.90
    (``val_clicks`` when never reached), ``box_iou`` mean IoU before any click, ``ious[k]``
    mean IoU after k clicks."""

    noc90: float
    box_iou: float
    ious: list[float]


def _read_split(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(labeled, val) indices of the split: click training uses only the labeled slices."""
    split = read_split(path, n)
    if not split.labeled or not split.val:
        raise ConfigError(f"{path}: needs labeled and validation slices")
    return np.array(split.labeled, dtype=np.int64), np.array(split.val, dtype=np.int64)


def _pairs(data: SliceSet, idx: np.ndarray) -> np.ndarray:
    """``(slice, structure)`` rows of ``idx`` whose mask is known and not empty."""
    areas = data.masks(idx).sum(axis=(-2, -1))  # (n, T)
    known = data.has_mask[idx][:, None]
    rows, cols = np.nonzero((areas > 0) & known)
    return np.stack([idx[rows], cols], axis=1) if len(rows) else np.zeros((0, 2), np.int64)


def load_click_data(bundle: ModelBundle, cfg: ClickTrainConfig) -> ClickData:
    """The data, its split and every slice's embedding (computed into the store if missing)."""
    size = int(bundle.config.training.get("size", 256))
    data = load_dataset(cfg.data, size, bundle.config.structures, bundle.config.window)
    split = Path(cfg.split) if cfg.split else Path(cfg.bundle) / "training" / SPLIT_FILE
    train, val = _read_split(split, len(data))
    try:
        store = EmbeddingStore(cfg.embedding_cache, encoder_identity(bundle.config, bundle.sam))
    except ValueError as exc:
        raise ConfigError(f"{cfg.bundle}: {exc}; click training needs a frozen encoder") from None
    used = np.unique(np.concatenate([train, val]))
    embs = store.fill(
        bundle.sam, bundle.config, [data.images[i] for i in used], progress=not cfg.quiet
    )
    full = torch.zeros((len(data), *embs.shape[1:]), dtype=torch.float32)
    full[torch.from_numpy(used)] = torch.from_numpy(embs)
    train_pairs, val_pairs = _pairs(data, train), _pairs(data, val)
    if not len(train_pairs) or not len(val_pairs):
        raise ConfigError("click training needs labeled slices with a structure in them")
    return ClickData(data, full, train, val_pairs, train_pairs)


def trainable_parameters(sam: torch.nn.Module) -> list[torch.nn.Parameter]:
    """Every prompt-encoder and mask-decoder parameter (set to require grad); the rest frozen."""
    for p in sam.parameters():
        p.requires_grad_(False)
    params = [*sam.prompt_encoder.parameters(), *sam.mask_decoder.parameters()]
    for p in params:
        p.requires_grad_(True)
    return params


def _items(
    cd: ClickData,
    rows: np.ndarray,
    icfg: InteractiveConfig,
    rng: np.random.Generator,
    extra_slices: Sequence[int] = (),
) -> tuple[list[int], list[InteractiveItem]]:
    """The items of ``rows`` (``(slice, structure)``) with their first prompts; the distinct
    slices of the rows and ``extra_slices`` (returned, sorted) are what ``item.image`` indexes."""
    slices = sorted({int(s) for s in rows[:, 0]} | {int(s) for s in extra_slices})
    pos = {s: i for i, s in enumerate(slices)}
    items = []
    for s, t in rows:
        gt = cd.data.masks(int(s))[int(t)]
        items.append(InteractiveItem(pos[int(s)], gt, first_prompt(gt, rng, icfg)))
    return slices, items


def validate(
    sam: torch.nn.Module, cd: ClickData, frame: ModelFrame, cfg: ClickTrainConfig
) -> ValScore:
    """The RITM click rule from the exact box on the first ``val_items`` validation pairs."""
    rows = cd.val_pairs[: cfg.val_items]
    icfg = InteractiveConfig(
        rounds=cfg.val_clicks, p_box=1.0, p_jitter_box=0.0, p_point=0.0, p_cam=0.0,
        click_sampling="ritm", w_distill=0.0,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    sam.eval()
    per_round: list[list[float]] = []
    with torch.no_grad(), _autocast(cfg):
        for start in range(0, len(rows), 8):
            slices, items = _items(cd, rows[start : start + 8], icfg, rng)
            emb = cd.embeddings[torch.as_tensor(slices)].to(cfg.device)
            out = interactive_losses(sam, emb, [frame] * len(slices), items, icfg, rng)
            assert out.item_ious is not None
            per_round.extend(np.asarray(out.item_ious).T.tolist())  # (items, rounds)
    sam.train()
    ious = np.asarray(per_round)  # (n, rounds + 1)
    nocs = [noc(run, NOC_IOU, cfg.val_clicks) for run in ious]
    return ValScore(float(np.mean(nocs)), float(ious[:, 0].mean()), ious.mean(axis=0).tolist())


def _autocast(cfg: ClickTrainConfig) -> torch.autocast:
    kind = "cuda" if cfg.device.startswith("cuda") else "cpu"
    return torch.autocast(kind, dtype=torch.bfloat16, enabled=cfg.bf16)


def train_step(
    sam: torch.nn.Module,
    teacher: torch.nn.Module,
    cd: ClickData,
    frame: ModelFrame,
    cfg: ClickTrainConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, list[float]]:
    """One step's loss (not yet backpropagated) and the mean IoU after each round."""
    icfg = interactive_config(cfg)
    rows = cd.train_pairs[rng.choice(len(cd.train_pairs), size=cfg.items, replace=False)]
    extra = [int(s) for s in rng.choice(cd.train, size=cfg.distill_boxes, replace=True)]
    slices, items = _items(cd, rows, icfg, rng, extra)
    pos = {s: i for i, s in enumerate(slices)}
    distill = [(pos[s], box) for s in extra for box in random_boxes(frame.original_hw, rng, 1)]
    grad = None
    if cfg.grad_rounds:
        grad = sorted(rng.choice(cfg.rounds + 1, size=cfg.grad_rounds, replace=False).tolist())
    emb = cd.embeddings[torch.as_tensor(slices)].to(cfg.device)
    with _autocast(cfg):
        out = interactive_losses(
            sam, emb, [frame] * len(slices), items, icfg, rng,
            teacher=teacher if cfg.w_distill > 0 else None, distill=distill, grad_rounds=grad,
        )  # fmt: skip
    return out.total, out.ious


@dataclass
class ClickRun:
    """What :func:`train_clicks` did: the kept step (0: the start was never beaten), the
    validation scores per validated step, seconds, and the written bundle."""

    out: Path
    best_step: int
    start: ValScore
    best: ValScore
    history: list[dict[str, object]]
    seconds: float
    steps_done: int
    n_train_pairs: int


def _acceptable(score: ValScore, start: ValScore, cfg: ClickTrainConfig) -> bool:
    return score.box_iou >= start.box_iou - cfg.max_box_drop


def _better(score: ValScore, best: ValScore) -> bool:
    """Fewer clicks to IoU 0.90; on a tie (NoC is coarse on a few dozen items), the higher
    mean IoU over the clicks."""
    if not math.isclose(score.noc90, best.noc90):
        return score.noc90 < best.noc90
    if len(score.ious) < 2 or len(best.ious) < 2:
        return False
    return float(np.mean(score.ious[1:])) > float(np.mean(best.ious[1:]))


def train_clicks(cfg: ClickTrainConfig) -> ClickRun:
    """Train the clicks of ``cfg.bundle`` and write the best checkpoint to ``cfg.out``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    bundle = load_bundle(cfg.bundle, cfg.device)
    cd = load_click_data(bundle, cfg)
    sam = bundle.sam
    frame = ModelFrame.for_sam(tuple(cd.data.images.shape[1:3]), bundle.config.sam)
    teacher = frozen_copy(sam)
    params = trainable_parameters(sam)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = best = validate(sam, cd, frame, cfg)
    best_state, best_step = _decoder_state(sam), 0
    history: list[dict[str, object]] = [{"step": 0, **asdict(start)}]
    t0, done = time.monotonic(), 0
    sam.train()
    bar = tqdm(range(1, cfg.steps + 1), desc="click training", disable=cfg.quiet)
    for step in bar:
        loss, ious = train_step(sam, teacher, cd, frame, cfg, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        done = step
        bar.set_postfix(loss=f"{float(loss.detach()):.3f}", iou=f"{ious[0]:.2f}→{ious[-1]:.2f}")
        out_of_time = time.monotonic() - t0 > cfg.max_minutes * 60
        if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
            score = validate(sam, cd, frame, cfg)
            history.append({"step": step, "loss": float(loss.detach()), **asdict(score)})
            if _acceptable(score, start, cfg) and _better(score, best):
                best, best_state, best_step = score, _decoder_state(sam), step
        if out_of_time:
            break
    _load_decoder_state(sam, best_state)
    seconds = time.monotonic() - t0
    run = ClickRun(
        Path(cfg.out), best_step, start, best, history, seconds, done, len(cd.train_pairs)
    )
    _save(bundle, cfg, run)
    return run


TRAINED = ("prompt_encoder.", "mask_decoder.")


def _decoder_state(sam: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the trained parameters (prompt encoder and mask decoder, LoRA included)."""
    return {k: v.detach().clone() for k, v in sam.state_dict().items() if k.startswith(TRAINED)}


def _load_decoder_state(sam: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    result = sam.load_state_dict(state, strict=False)
    if result.unexpected_keys:
        raise RuntimeError(f"unexpected keys restoring the best step: {result.unexpected_keys}")


def _next_version(version: str) -> str:
    return str(int(version) + 1) if version.isdigit() else f"{version}.clicks"


def _save(bundle: ModelBundle, cfg: ClickTrainConfig, run: ClickRun) -> None:
    """The bundle with the trained prompt encoder and decoder (saved in the adapter file),
    its lineage and the click training's record in ``config.training["clicks"]``."""
    sam = bundle.sam
    sam.eval()
    for p in sam.parameters():
        p.requires_grad_(False)
    record = {
        **{k: v for k, v in asdict(cfg).items() if k not in ("quiet",)},
        "best_step": run.best_step,
        "steps_done": run.steps_done,
        "seconds": round(run.seconds, 1),
        "n_train_pairs": run.n_train_pairs,
        "val_start": asdict(run.start),
        "val_best": asdict(run.best),
    }
    training = {**bundle.config.training, "clicks": record}
    lora = replace(bundle.config.lora, train_prompt_encoder=True, train_decoder=True)
    version = cfg.version or _next_version(bundle.config.version)
    new = with_version(bundle, version, lora=lora, training=training)
    out = save_bundle(new, cfg.out)
    log = out / "training"
    log.mkdir(exist_ok=True)
    (log / "clicks_history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in run.history))
