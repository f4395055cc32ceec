"""Click training of a bundle: SAM's interactive protocol alone, on cached image embeddings.

``python -m adasam train-clicks`` starts from a trained bundle (classifier, LoRA, decoder) and
trains only SAM's prompt encoder and mask decoder with :func:`~adasam.training.interactive.
interactive_losses`: each item (a labeled slice and one of its structures) gets a first prompt
(exact box, jittered box, one point, or the pipeline's own CAM prompt: the box and dense mask
prompt that :func:`~adasam.prompts.make_prompts` makes from the frozen classifier's CAM, computed
once per slice from the cached embedding, as the studio's first answer is) and then ``rounds``
corrective clicks drawn from the error region, the previous logits fed back, a loss on the
rounds. A distillation term against a frozen copy of the starting decoder, on the items' boxes
and random boxes, keeps the box-only answers.
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
``max_box_drop`` below the start's. With ``p_cam`` > 0 the same runs from the CAM start too:
the NoC@90 that selects is the mean of the two starts', and the CAM start's IoU before any
click (the studio's first answer) is guarded like the box's.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adasam.bundle import ModelBundle, load_bundle, save_bundle, with_version
from adasam.clicks import noc
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.errors import ConfigError
from adasam.frame import ModelFrame
from adasam.predictor import Predictor, image_key
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
    """The per-item protocol of training (CAM first prompts where :class:`ClickData` has them)."""
    return InteractiveConfig(
        rounds=cfg.rounds,
        p_box=cfg.p_box,
        p_jitter_box=cfg.p_jitter_box,
        p_point=cfg.p_point,
        p_cam=cfg.p_cam,
        jitter=cfg.jitter,
        p_ritm=cfg.p_ritm,
        w_distill=cfg.w_distill,
    )


CamPrompt = tuple[np.ndarray, torch.Tensor]
"""The pipeline's CAM prompt of one (slice, structure): float64 XYXY box (original pixels) and
float32 ``(mask_size, mask_size)`` dense mask-prompt logits."""


@dataclass(frozen=True)
class ClickData:
    """The training and validation items: ``pairs_*`` are ``(slice, structure)`` rows with
    the structure present; ``embeddings`` float32 ``(N, C, e, e)`` of every slice; ``cam``
    the CAM prompt of the pairs whose CAM reaches the prompt threshold (empty unless asked)."""

    data: SliceSet
    embeddings: torch.Tensor
    train: np.ndarray
    val_pairs: np.ndarray
    train_pairs: np.ndarray
    cam: dict[tuple[int, int], CamPrompt] = field(default_factory=dict)


@dataclass(frozen=True)
class ValScore:
    """Validation by the RITM rule from the exact box: ``noc90`` mean clicks to IoU 0.90
    (``val_clicks`` when never reached), ``box_iou`` mean IoU before any click, ``ious[k]``
    mean IoU after k clicks; ``cam_*`` the same from the CAM start (None when not run)."""

    noc90: float
    box_iou: float
    ious: list[float]
    cam_noc90: float | None = None
    cam_iou: float | None = None
    cam_ious: list[float] | None = None

    @property
    def selection_noc90(self) -> float:
        """What selection minimises: NoC@90, averaged over the two starts when both ran."""
        return self.noc90 if self.cam_noc90 is None else (self.noc90 + self.cam_noc90) / 2


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
    if cfg.p_cam <= 0:
        return ClickData(data, full, train, val_pairs, train_pairs)
    pairs = np.concatenate([train_pairs, val_pairs])
    cam = cam_prompts(bundle, data, full, pairs, progress=not cfg.quiet)
    if not cam:
        raise ConfigError(
            "p_cam > 0 but the classifier's CAM reaches the prompt threshold on no training "
            "pair: train with --p-cam 0"
        )
    return ClickData(data, full, train, val_pairs, train_pairs, cam)


class _KnownEmbeddings:
    """The slices' embeddings as a :class:`~adasam.predictor.EmbeddingSource` (by pixels)."""

    def __init__(self, images: np.ndarray, embeddings: torch.Tensor, slices: np.ndarray) -> None:
        self._by_key = {image_key(images[int(i)]): embeddings[int(i)].numpy() for i in slices}

    def get(self, image: np.ndarray) -> np.ndarray | None:
        return self._by_key.get(image_key(image))


def cam_prompts(
    bundle: ModelBundle,
    data: SliceSet,
    embeddings: torch.Tensor,
    pairs: np.ndarray,
    progress: bool = True,
) -> dict[tuple[int, int], CamPrompt]:
    """The pipeline's own first prompt of each ``(slice, structure)`` pair: what
    :meth:`~adasam.predictor.Predictor.predict` makes from the classifier's CAM (on the cached
    embedding, no encoder run), whatever the classifier's probability and the domain check: a
    wrong CAM box is a start the clicks must learn to correct. Pairs whose CAM reaches the
    prompt threshold nowhere are left out."""
    slices = np.unique(pairs[:, 0])
    known = _KnownEmbeddings(data.images, embeddings, slices)
    predictor = Predictor(bundle, str(embeddings.device), cache_size=1, embedding_store=known)
    names = bundle.config.structures
    out: dict[tuple[int, int], CamPrompt] = {}
    for s in tqdm(slices, desc="CAM prompts", unit="slice", leave=False, disable=not progress):
        wanted = [int(t) for t in pairs[pairs[:, 0] == s, 1]]
        pred = predictor.predict(
            data.images[int(s)],
            [names[t] for t in wanted],
            presence_threshold=1e-9,
            prompt_out_of_domain=True,
        )
        for t in wanted:
            p = pred.structure(names[t]).prompts
            if p is not None:
                out[(int(s), t)] = (p.box, torch.from_numpy(p.mask_logits))
    return out


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
        box, logits = cd.cam.get((int(s), int(t)), (None, None))
        first = first_prompt(gt, rng, icfg, cam_box=box, cam_logits=logits)
        items.append(InteractiveItem(pos[int(s)], gt, first))
    return slices, items


def validate(
    sam: torch.nn.Module, cd: ClickData, frame: ModelFrame, cfg: ClickTrainConfig
) -> ValScore:
    """The RITM click rule from the exact box on the first ``val_items`` validation pairs, and
    from the CAM start on the first ``val_items`` that have one (when ``cd.cam`` is not empty)."""
    box_start = _val_ious(sam, cd, frame, cfg, cd.val_pairs[: cfg.val_items], cam=False)
    box_noc, box_iou, box_curve = _summary(box_start, cfg.val_clicks)
    with_cam = np.array([r for r in cd.val_pairs if (int(r[0]), int(r[1])) in cd.cam])
    if not len(with_cam):
        return ValScore(box_noc, box_iou, box_curve)
    cam_start = _val_ious(sam, cd, frame, cfg, with_cam[: cfg.val_items], cam=True)
    return ValScore(box_noc, box_iou, box_curve, *_summary(cam_start, cfg.val_clicks))


def _summary(ious: np.ndarray, clicks: int) -> tuple[float, float, list[float]]:
    """(mean NoC@90, mean IoU before a click, mean IoU after each click) of ``(n, clicks+1)``."""
    nocs = [noc(run, NOC_IOU, clicks) for run in ious]
    return float(np.mean(nocs)), float(ious[:, 0].mean()), ious.mean(axis=0).tolist()


def _val_ious(
    sam: torch.nn.Module,
    cd: ClickData,
    frame: ModelFrame,
    cfg: ClickTrainConfig,
    rows: np.ndarray,
    cam: bool,
) -> np.ndarray:
    """IoU ``(len(rows), val_clicks + 1)`` after each RITM click, from the box or the CAM."""
    icfg = InteractiveConfig(
        rounds=cfg.val_clicks, p_box=0.0 if cam else 1.0, p_jitter_box=0.0, p_point=0.0,
        p_cam=1.0 if cam else 0.0, click_sampling="ritm", w_distill=0.0,
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
    return np.asarray(per_round)


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
    """Neither start's IoU before any click fell more than ``max_box_drop`` below the start's."""
    if score.box_iou < start.box_iou - cfg.max_box_drop:
        return False
    if score.cam_iou is not None and start.cam_iou is not None:
        return score.cam_iou >= start.cam_iou - cfg.max_box_drop
    return True


def _click_curve(score: ValScore) -> list[float]:
    """IoU after each click (both starts' concatenated when both ran)."""
    return [*score.ious[1:], *(score.cam_ious or [])[1:]]


def _better(score: ValScore, best: ValScore) -> bool:
    """Fewer clicks to IoU 0.90 (:attr:`ValScore.selection_noc90`); on a tie (NoC is coarse
    on a few dozen items), the higher mean IoU over the clicks."""
    if not math.isclose(score.selection_noc90, best.selection_noc90):
        return score.selection_noc90 < best.selection_noc90
    mine, theirs = _click_curve(score), _click_curve(best)
    if not mine or not theirs:
        return False
    return float(np.mean(mine)) > float(np.mean(theirs))


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
