"""Fine-tuning a bundle on clinicians' final masks, mixed with a replay of its training data.

The ML half of the learning loop (no storage here: :mod:`learning.job` reads the corrections
and registers the result). A fine-tuning run starts from the parent bundle and trains what
:func:`adasam.training.loop.train` trains with ``init_bundle``: LoRA, the mask decoder when the
bundle trains it, and the classifier, with the gradient-feedback path on.

- **Corrections** become labeled slices: the final masks of one slice are painted into one label
  map. A structure of the model that the clinician did not correct on that slice is labeled by
  the parent model's own prediction (presence and best candidate), so a correction of one
  structure never teaches "the other one is absent".
- **SegEx ratings weigh**: a slice whose candidate was rated ``major_edits`` is drawn twice per
  epoch, ``reject`` three times (hard examples); ``accept`` and ``minor_edits`` once, so an
  accepted proposal confirms what the model does. ``rating_weights=False`` is the ablation.
- **Replay**: a seeded sample of the parent's original labeled training slices (the data folder
  and case ids recorded in the bundle's ``training/split.json``, or ``training/replay.json`` of
  an earlier fine-tune), ``replay_ratio`` slices per correction slice, when the folder exists.
- **The out-of-domain model is refitted** (:func:`refit_domain`) when the parent has one: the
  parent's Gaussian describes the parent classifier's features, which fine-tuning moves. The
  candidate's Gaussian is fitted on its own features of the distinct slices it trained on
  (corrections and replay), its threshold calibrated by the training-time rule
  (:func:`adasam.domain.fit_domain`) on a seeded share of those slices' subjects left out of
  the fit.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from adasam.errors import ConfigError

REPLAY_FILE = "replay.json"
DOMAIN_VAL_SHARE = 0.2
RATING_REPEATS = {"reject": 3, "major_edits": 2, "minor_edits": 1, "accept": 1}


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of one fine-tuning run."""

    steps: int = field(default=60, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=4, metadata={"help": "slices per step"})
    lr: float = field(default=5e-4, metadata={"help": "LoRA/decoder learning rate"})
    classifier_lr: float = field(default=1e-4, metadata={"help": "classifier learning rate"})
    replay_ratio: float = field(
        default=1.0, metadata={"help": "replayed original slices per correction slice (0: none)"}
    )
    replay_max: int = field(default=200, metadata={"help": "at most this many replayed slices"})
    rating_weights: bool = field(
        default=True, metadata={"help": "hard examples (major edits, reject) drawn more often"}
    )
    click_rounds: int = field(
        default=2,
        metadata={
            "help": "corrective-click rounds per item on the corrected masks (SAM's interactive "
            "protocol, as `train --click-rounds`), so a job keeps and improves what clicks do; "
            "0: box/CAM prompts only"
        },
    )
    click_items: int = field(
        default=1, metadata={"help": "(slice, structure) items per step that get the click rounds"}
    )
    device: str = field(default="cpu", metadata={"help": "torch device"})
    threads: int = field(default=0, metadata={"help": "CPU threads (0: PyTorch's default)"})
    max_minutes: float | None = field(
        default=None, metadata={"help": "stop at the first epoch end past this many minutes"}
    )
    seed: int = field(default=0, metadata={"help": "replay sample, batches, augmentation"})
    embedding_cache: str | None = field(
        default=None,
        metadata={
            "help": "folder for a frozen encoder's embeddings of the slices (default: beside "
            "the candidate's folder, so they go with it; never the working folder)"
        },
    )

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be ≥ 1")
        if self.lr <= 0 or self.classifier_lr < 0:
            raise ConfigError("learning rates must be > 0 (classifier ≥ 0)")
        if self.replay_ratio < 0 or self.replay_max < 0:
            raise ConfigError("replay_ratio and replay_max must be ≥ 0")
        if self.click_rounds < 0 or self.click_items < 1:
            raise ConfigError(
                f"click_rounds must be ≥ 0 and click_items ≥ 1, got {self.click_rounds} and "
                f"{self.click_items}"
            )
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be > 0, got {self.max_minutes}")


@dataclass(frozen=True, eq=False)
class CorrectedCase:
    """One final mask, ready to learn from or to score on.

    ``image`` uint8 ``(H, W, 3)`` (the display the model sees); ``mask`` bool ``(H, W)``;
    ``case`` identifies the slice (the storage content hash); ``verdict`` the SegEx verdict of
    the candidate it started from (None: unrated).
    """

    correction_id: int
    case: str
    structure: str
    image: np.ndarray
    mask: np.ndarray
    verdict: str | None = None


def rating_repeats(verdict: str | None) -> int:
    """How often a slice is drawn per epoch for its SegEx verdict (1 when unrated)."""
    return RATING_REPEATS.get(verdict or "", 1)


def data_hash(cases: Sequence[CorrectedCase], replay_ids: Sequence[str] = ()) -> str:
    """sha256 of what a run learns from: correction ids, slices, structures, final masks and the
    replayed case ids (lineage: the same hash means the same training data)."""
    h = hashlib.sha256()
    for c in sorted(cases, key=lambda c: c.correction_id):
        h.update(f"{c.correction_id}:{c.case}:{c.structure}:{c.mask.shape}".encode())
        h.update(np.packbits(c.mask.astype(bool)).tobytes())
    for r in sorted(replay_ids):
        h.update(f"replay:{r}".encode())
    return h.hexdigest()


def _resize(img: np.ndarray, size: int, nearest: bool) -> np.ndarray:
    mode = Image.NEAREST if nearest else Image.BILINEAR
    return np.asarray(Image.fromarray(img).resize((size, size), mode))


PseudoLabel = Callable[[np.ndarray, Sequence[str]], dict[str, np.ndarray | None]]
"""(image, structures) → {structure: bool (H, W) mask, or None when predicted absent}."""


def corrections_slices(
    cases: Sequence[CorrectedCase],
    structures: Sequence[str],
    size: int,
    *,
    pseudo_label: PseudoLabel | None,
    rating_weights: bool,
) -> Any:
    """A :class:`~adasam.training.data.SliceSet` of the corrected slices (one row per slice,
    repeated by rating when ``rating_weights``); structures left uncorrected on a slice come
    from ``pseudo_label`` (absent when it is None)."""
    from adasam.training.data import SliceSet

    by_case: dict[str, list[CorrectedCase]] = {}
    for c in cases:
        if c.structure not in structures:
            raise ConfigError(f"correction {c.correction_id}: the model has no {c.structure!r}")
        by_case.setdefault(c.case, []).append(c)
    images, labels, present, subjects, ids = [], [], [], [], []
    for key, group in by_case.items():
        image = group[0].image
        label = np.zeros(image.shape[:2], np.uint8)
        found = np.zeros(len(structures), bool)
        missing = [s for s in structures if s not in {c.structure for c in group}]
        if missing and pseudo_label is not None:
            for name, mask in pseudo_label(image, missing).items():
                if mask is not None and mask.any():
                    label[mask] = structures.index(name) + 1
                    found[structures.index(name)] = True
        for c in sorted(group, key=lambda c: c.correction_id):
            t = structures.index(c.structure)
            label[label == t + 1] = 0
            label[c.mask] = t + 1
            found[t] = bool(c.mask.any())
        repeats = max(rating_repeats(c.verdict) for c in group) if rating_weights else 1
        for r in range(repeats):
            images.append(_resize(image, size, nearest=False))
            labels.append(_resize(label, size, nearest=True))
            present.append(found.copy())
            subjects.append(key)
            ids.append(f"correction-{group[0].correction_id}-{r}")
    n = len(images)
    return SliceSet(
        np.stack(images) if n else np.zeros((0, size, size, 3), np.uint8),
        np.stack(labels) if n else np.zeros((0, size, size), np.uint8),
        np.ones(n, bool),
        np.stack(present) if n else np.zeros((0, len(structures)), bool),
        tuple(structures),
        {s: i + 1 for i, s in enumerate(structures)},
        subjects,
        ids,
        np.full((n, 2), np.nan),
    )


def replay_source(bundle_dir: Path) -> tuple[str, list[str]] | None:
    """(data folder, labeled case ids) the bundle was trained on, or None when unrecorded."""
    training = Path(bundle_dir) / "training"
    replay = training / REPLAY_FILE
    if replay.is_file():
        info = json.loads(replay.read_text())
        return str(info["data"]), [str(c) for c in info["case_ids"]]
    from adasam.training.data import SPLIT_FILE, read_split_case_ids

    split = training / SPLIT_FILE
    config = Path(bundle_dir) / "config.json"
    if not (split.is_file() and config.is_file()):
        return None
    data = json.loads(config.read_text()).get("training", {}).get("data")
    case_ids = read_split_case_ids(split).get("labeled")
    if not data or not case_ids:
        return None
    return str(data), [str(c) for c in case_ids]


def replay_slices(
    bundle_dir: Path,
    structures: Sequence[str],
    size: int,
    n: int,
    seed: int,
    window: str | None,
    data_root: Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """(SliceSet or None, info): ``n`` of the parent's original labeled slices, seeded, with
    label values renumbered to the model's structure order. ``info`` says what was used or why
    nothing was (``data_root`` resolves a relative data path; default: the working folder)."""
    from adasam.training.data import DatasetError, load_folder

    source = replay_source(bundle_dir)
    if source is None:
        return None, {"used": 0, "reason": "the bundle records no training data"}
    data, case_ids = source
    path = Path(data)
    if not path.is_absolute() and data_root is not None:
        path = data_root / path
    if n <= 0:
        return None, {"used": 0, "reason": "replay off", "data": data}
    if not (path / "images").is_dir():
        return None, {"used": 0, "reason": f"training data {data} is not here", "data": data}
    try:
        full = load_folder(path, size, structures, window)
    except DatasetError as exc:
        return None, {"used": 0, "reason": str(exc), "data": data}
    wanted = set(case_ids)
    idx = [i for i, c in enumerate(full.case_ids) if c in wanted and full.has_mask[i]]
    rng = np.random.default_rng(seed)
    pick = sorted(rng.permutation(idx)[:n].tolist()) if idx else []
    if not pick:
        return None, {"used": 0, "reason": "none of the recorded slices is in the data"}
    sub = full.subset(pick)
    masks = sub.masks(np.arange(len(sub)))  # (n, T, S, S)
    labels = np.zeros(sub.labels.shape, np.uint8)
    for t in range(len(structures)):
        labels[masks[:, t]] = t + 1
    sub.labels = labels
    sub.label_values = {s: i + 1 for i, s in enumerate(structures)}
    sub.subjects = [f"replay-{s}" for s in sub.subjects]
    info = {"used": len(pick), "data": data, "case_ids": [sub.case_ids[i] for i in range(len(sub))]}
    return sub, info


def concat(a: Any, b: Any | None) -> Any:
    """Two SliceSets of the same size and label numbering, one after the other."""
    from adasam.training.data import SliceSet

    if b is None or len(b) == 0:
        return a
    return SliceSet(
        np.concatenate([a.images, b.images]),
        np.concatenate([a.labels, b.labels]),
        np.concatenate([a.has_mask, b.has_mask]),
        np.concatenate([a.present, b.present]),
        a.structures,
        a.label_values,
        [*a.subjects, *b.subjects],
        [*a.case_ids, *b.case_ids],
        np.concatenate([a.spacing, b.spacing]),
    )


def training_size(config: Any) -> int:
    """The slice side a bundle was trained at (its SAM input size when unrecorded)."""
    return int((config.training or {}).get("size", config.sam.image_size))


@dataclass(frozen=True)
class FinetuneResult:
    """Where the candidate bundle is and how its training went."""

    bundle_dir: Path
    steps: int
    seconds: float
    final_loss: float
    history: list[dict[str, Any]]
    domain: dict[str, Any] = field(default_factory=dict)


def finetune(
    parent_dir: Path,
    out_dir: Path,
    data: Any,
    cfg: FinetuneConfig,
    *,
    version: str,
    replay_info: dict[str, Any] | None = None,
    progress: bool = True,
) -> FinetuneResult:
    """Train a copy of ``parent_dir`` on ``data`` (a SliceSet) and save it to ``out_dir`` as
    ``version`` (``parent_version`` = the parent's). The optimizer checkpoint is not kept."""
    from adasam.bundle import load_bundle, read_config, save_bundle, with_version
    from adasam.training.data import SPLIT_FILE
    from adasam.training.loop import train
    from adasam.training.train_config import TrainConfig

    if len(data) == 0:
        raise ConfigError("nothing to fine-tune on")
    parent = read_config(parent_dir)
    size = training_size(parent)
    per_epoch = max(1, min(cfg.steps, 10))
    train_cfg = TrainConfig(
        data=str((replay_info or {}).get("data", "")),
        out=str(out_dir),
        labeled=str(len(data)),
        size=size,
        epochs=math.ceil(cfg.steps / per_epoch),
        steps_per_epoch=per_epoch,
        max_steps=cfg.steps,
        batch_size=cfg.batch_size,
        unlabeled_batch_size=0,
        lr=cfg.lr,
        classifier_lr=cfg.classifier_lr,
        warmup_steps=min(5, cfg.steps),
        val_fraction=0.0,
        test_fraction=0.0,
        calibrate=False,
        train_decoder=parent.lora.train_decoder,
        click_rounds=cfg.click_rounds,
        click_items=cfg.click_items,
        init_bundle=str(parent_dir),
        device=cfg.device,
        threads=cfg.threads,
        max_minutes=cfg.max_minutes,
        seed=cfg.seed,
        weights_dtype=parent.weights_dtype,
        embedding_cache=cfg.embedding_cache or str(Path(out_dir).parent / "embeddings"),
    )
    start = time.perf_counter()
    _, state = train(train_cfg, data=data, progress=progress)
    seconds = time.perf_counter() - start
    bundle, domain = refit_domain(load_bundle(out_dir, cfg.device), data, cfg.seed)
    save_bundle(with_version(bundle, version), out_dir)
    training = Path(out_dir) / "training"
    (training / "checkpoint.pt").unlink(missing_ok=True)
    source = replay_source(parent_dir)
    if source is not None:
        (training / REPLAY_FILE).write_text(
            json.dumps({"data": source[0], "case_ids": source[1]}) + "\n"
        )
    else:
        (training / SPLIT_FILE).unlink(missing_ok=True)
    final = state.history[-1]["loss"] if state.history else math.nan
    return FinetuneResult(Path(out_dir), state.step, seconds, float(final), state.history, domain)


def domain_split(
    data: Any, seed: int, share: float = DOMAIN_VAL_SHARE
) -> tuple[list[int], list[int]]:
    """(fit, calibration) indices of the distinct slices of ``data`` (a slice drawn twice for its
    rating counts once), split by subject: a seeded ``share`` of the subjects (at least one)
    calibrates the threshold, the rest fit the Gaussian."""
    seen: set[bytes] = set()
    by_subject: dict[str, list[int]] = {}
    for i in range(len(data)):
        key = hashlib.sha1(np.ascontiguousarray(data.images[i]).tobytes()).digest()
        if key not in seen:
            seen.add(key)
            by_subject.setdefault(str(data.subjects[i]), []).append(i)
    subjects = sorted(by_subject)
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_val = max(1, round(share * len(subjects))) if len(subjects) > 1 else 0
    val = sorted(i for k in order[:n_val] for i in by_subject[subjects[k]])
    fit = sorted(i for k in order[n_val:] for i in by_subject[subjects[k]])
    return fit, val


def refit_domain(bundle: Any, data: Any, seed: int) -> tuple[Any, dict[str, Any]]:
    """(bundle, info): ``bundle`` (a fine-tuned :class:`~adasam.bundle.ModelBundle`) with its
    out-of-domain Gaussian refitted on its own features of the slices of ``data`` (the SliceSet
    it trained on), same kind of features and threshold rule as at training time. ``info`` says
    what was done, or why the parent's model was kept (no domain model; fewer than 2 subjects
    or 2 slices to fit on). ``own_domain_rate``: the share of those slices it accepts."""
    from adasam.bundle import ModelBundle
    from adasam.domain import fit_domain
    from adasam.training.loop import domain_features

    old = bundle.config.domain
    if bundle.domain is None or old is None:
        return bundle, {"refit": False, "reason": "the parent has no domain model"}
    fit, val = domain_split(data, seed)
    if len(fit) < 2 or not val:
        reason = (
            f"{len(fit) + len(val)} distinct slice(s) in {len({*data.subjects})} subject(s): "
            "too few to fit and calibrate (≥ 2 subjects, ≥ 3 slices); the parent's kept"
        )
        return bundle, {"refit": False, "kept_parent": True, "reason": reason}
    features = domain_features(bundle, data, [*fit, *val], old.features)
    model = fit_domain(features[: len(fit)], features[len(fit) :])
    new = replace(old, threshold=model.threshold, n_fit=len(fit), n_val=len(val))
    fitted = ModelBundle(replace(bundle.config, domain=new), bundle.classifier, bundle.sam, model)
    scores = model.scores(features)
    info = {
        "refit": True,
        "features": new.features,
        "n_fit": len(fit),
        "n_val": len(val),
        "threshold": round(new.threshold, 4),
        "parent_threshold": round(old.threshold, 4),
        "own_domain_rate": round(float(np.mean(scores <= new.threshold)), 4),
    }
    return fitted, info


def discard(directory: Path) -> None:
    """Remove a candidate bundle folder (after it was registered, or on failure)."""
    shutil.rmtree(directory, ignore_errors=True)
