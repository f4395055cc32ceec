"""Refit a trained bundle's classifier on cached embeddings (``python -m adasam fit-classifier``).

Why: the joint ADA-SAM training keeps the epoch with the best validation *segmentation* score,
and that can be an epoch at which the classifier has barely learnt. The liver demo bundle kept
epoch 1 of 20: its presence probabilities all lay between 0.57 and 0.75 on validation slices,
so at any threshold it either "found" liver on most liver-free slices or missed real ones.

What: only the ``sam-embedding`` classifier head trains, on the frozen encoder's cached
embeddings (no decoder, so an epoch over 200 slices takes seconds), with the same objective as
the training's classifier warm-up (:func:`adasam.training.loop.warm_up_classifier`): image-level
BCE on every training slice plus ``w_cam`` × the soft Dice of the CAM with the mask on labeled
slices (the CAM is what makes the box and mask prompts). The epoch with the lowest validation
loss is kept. The classifier's pooled features feed the out-of-domain check, so that is refitted
too (same slices as the training's), and the presence and CAM thresholds are calibrated on the
validation slices (:mod:`adasam.training.calibrate`). SAM is untouched. The result is a new
bundle version (parent: the start) with the record under ``config.training["classifier_fit"]``
and the per-epoch curve in ``training/classifier_fit_history.jsonl``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adasam.bundle import ModelBundle, load_bundle, save_bundle, with_version
from adasam.classifier import build_classifier, takes_embedding
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.errors import ConfigError
from adasam.training.calibrate import apply as apply_calibration
from adasam.training.calibrate import calibrate
from adasam.training.classifier_fit_config import ClassifierFitConfig
from adasam.training.data import SPLIT_FILE, SliceSet, load_dataset, read_split
from adasam.training.loop import encoder_frozen, fit_bundle_domain
from adasam.training.losses import classification_loss, prob_dice_loss
from adasam.training.metrics import auroc
from adasam.training.model import AdaSamNet

HISTORY_FILE = "classifier_fit_history.jsonl"
PLOT_FILE = "classifier_fit.png"


@dataclass(frozen=True)
class FitScore:
    """One validation pass: the objective and what it is made of.

    ``loss``: BCE + ``w_cam`` × CAM soft-Dice loss (lower is better; what selection uses);
    ``auroc``: mean over structures of the presence AUROC (NaN where a structure's validation
    slices are all one class); ``cam_dice``: mean soft Dice of the CAM with the mask on slices
    showing the structure; ``p_present`` / ``p_absent``: mean presence probability on slices
    with / without the structure (how far apart the classifier holds the two)."""

    loss: float
    auroc: float
    cam_dice: float
    p_present: float
    p_absent: float


@dataclass(frozen=True)
class ClassifierFitRun:
    """What a fit did: the bundle written, the kept epoch (0: the start was best), validation
    at the start and at the kept epoch, every epoch's record, and the calibration result."""

    out: Path
    best_epoch: int
    start: FitScore
    best: FitScore
    history: list[dict[str, float]]
    seconds: float
    calibration: dict[str, object] | None


def _masks_known(data: SliceSet, idx: np.ndarray, labeled: set[int]) -> np.ndarray:
    """bool ``(len(idx),)``: the slice's masks may train the CAM (labeled, has a mask)."""
    return np.array([int(i) in labeled and bool(data.has_mask[i]) for i in idx], dtype=bool)


def batch_loss(
    net: AdaSamNet,
    data: SliceSet,
    embeddings: torch.Tensor,
    idx: np.ndarray,
    cam_rows: np.ndarray,
    w_cam: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The objective on slices ``idx``: (loss, logits ``(B, T)``, CAMs ``(B, T, S, S)``).

    ``cam_rows``: bool ``(B,)``, which slices' masks take part in the CAM term (present
    structures only)."""
    device = embeddings.device
    logits, cam = net.classify(torch.empty(0), embeddings[torch.as_tensor(idx)].to(device))
    present = torch.from_numpy(data.present[idx]).to(device)
    loss = classification_loss(logits, present, "bce")
    masks = torch.from_numpy(data.masks(idx)).to(device)
    pairs = np.argwhere(cam_rows[:, None] & data.present[idx])
    if w_cam > 0 and len(pairs):
        b, t = torch.as_tensor(pairs[:, 0]), torch.as_tensor(pairs[:, 1])
        loss = loss + w_cam * prob_dice_loss(cam[b, t], masks[b, t])
    return loss, logits, cam


def validate(
    net: AdaSamNet,
    data: SliceSet,
    embeddings: torch.Tensor,
    val: np.ndarray,
    w_cam: float,
    batch_size: int,
) -> FitScore:
    """The objective and its parts on the validation slices (every mask counts)."""
    net.classifier.eval()
    losses, probs, dices = [], [], []
    with torch.inference_mode():
        for start in range(0, len(val), batch_size):
            idx = val[start : start + batch_size]
            rows = np.asarray(data.has_mask[idx], dtype=bool)
            loss, logits, cam = batch_loss(net, data, embeddings, idx, rows, w_cam)
            losses.append(float(loss) * len(idx))
            probs.append(torch.sigmoid(logits).float().cpu().numpy())
            masks = torch.from_numpy(data.masks(idx))
            for b, t in np.argwhere(rows[:, None] & data.present[idx]):
                dices.append(1.0 - float(prob_dice_loss(cam[b, t][None], masks[b, t][None])))
    p = np.concatenate(probs)
    truth = data.present[val]
    aurocs = [auroc(p[:, t], truth[:, t]) for t in range(truth.shape[1])]
    finite = [a for a in aurocs if np.isfinite(a)]
    return FitScore(
        loss=float(sum(losses) / len(val)),
        auroc=float(np.mean(finite)) if finite else float("nan"),
        cam_dice=float(np.mean(dices)) if dices else float("nan"),
        p_present=float(p[truth].mean()) if truth.any() else float("nan"),
        p_absent=float(p[~truth].mean()) if (~truth).any() else float("nan"),
    )


def _embeddings(
    bundle: ModelBundle, data: SliceSet, used: np.ndarray, cfg: ClassifierFitConfig
) -> tuple[torch.Tensor, EmbeddingStore]:
    """``(N, C, e, e)`` float32 embeddings (zero for slices the split does not use)."""
    store = EmbeddingStore(cfg.embedding_cache, encoder_identity(bundle.config, bundle.sam))
    embs = store.fill(
        bundle.sam, bundle.config, [data.images[i] for i in used], progress=not cfg.quiet
    )
    full = torch.zeros((len(data), *embs.shape[1:]), dtype=torch.float32)
    full[torch.from_numpy(used)] = torch.from_numpy(embs)
    return full, store


def _check_fittable(bundle: ModelBundle, where: str) -> None:
    if not takes_embedding(bundle.classifier):
        raise ConfigError(
            f"{where}: fit-classifier refits a 'sam-embedding' classifier on cached embeddings; "
            f"this bundle's classifier is a {bundle.config.classifier.backbone}: retrain it "
            "with `python -m adasam train --init-bundle ...`"
        )
    if not encoder_frozen(bundle):
        raise ConfigError(
            f"{where}: the image encoder trains (LoRA); its embeddings can't be cached"
        )


def _split_indices(
    cfg: ClassifierFitConfig, data: SliceSet
) -> tuple[np.ndarray, np.ndarray, set[int]]:
    path = Path(cfg.split) if cfg.split else Path(cfg.bundle) / "training" / SPLIT_FILE
    split = read_split(path, len(data))
    train = np.asarray(split.training, dtype=np.int64)
    val = np.asarray(split.val, dtype=np.int64)
    if len(train) < 2 or not len(val):
        raise ConfigError(f"{path}: need ≥ 2 training and ≥ 1 validation slices")
    for name, idx in (("training", train), ("validation", val)):
        present = data.present[idx]
        if present.all() or not present.any():
            raise ConfigError(
                f"{path}: the {name} slices are all one class (every structure present, or "
                "none): a presence classifier needs slices with and without the structures"
            )
    return train, val, set(int(i) for i in split.labeled)


def fit_classifier(cfg: ClassifierFitConfig) -> ClassifierFitRun:
    """Refit ``cfg.bundle``'s classifier (see the module docstring); writes ``cfg.out``."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    bundle = load_bundle(cfg.bundle, cfg.device)
    _check_fittable(bundle, cfg.bundle)
    size = int(bundle.config.training.get("size", 256))
    data = load_dataset(cfg.data, size, bundle.config.structures, bundle.config.window)
    train, val, labeled = _split_indices(cfg, data)
    embeddings, store = _embeddings(bundle, data, np.unique(np.concatenate([train, val])), cfg)
    classifier = bundle.classifier
    if cfg.reinit:
        fresh = build_classifier(
            bundle.config.classifier, len(bundle.config.structures), embeddings.shape[1]
        )
        classifier.load_state_dict(fresh.state_dict())
    for p in bundle.sam.parameters():
        p.requires_grad_(False)
    for p in classifier.parameters():
        p.requires_grad_(True)
    net = AdaSamNet(bundle, size)
    opt = torch.optim.AdamW(classifier.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = best = validate(net, data, embeddings, val, cfg.w_cam, cfg.batch_size)
    best_state, best_epoch = _state(classifier), 0
    history: list[dict[str, float]] = [{"epoch": 0, **asdict(start)}]
    cam_train = _masks_known(data, train, labeled)
    t0 = time.monotonic()
    bar = tqdm(range(1, cfg.epochs + 1), desc="classifier fit", unit="epoch", disable=cfg.quiet)
    for epoch in bar:
        classifier.train()
        order = rng.permutation(len(train))
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            pick = order[s : s + cfg.batch_size]
            loss, _, _ = batch_loss(net, data, embeddings, train[pick], cam_train[pick], cfg.w_cam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(pick)
        score = validate(net, data, embeddings, val, cfg.w_cam, cfg.batch_size)
        history.append({"epoch": epoch, "train_loss": total / len(train), **asdict(score)})
        bar.set_postfix(val_loss=f"{score.loss:.3f}", auroc=f"{score.auroc:.3f}")
        if score.loss < best.loss:
            best, best_state, best_epoch = score, _state(classifier), epoch
        if time.monotonic() - t0 > cfg.max_minutes * 60:
            break
    classifier.load_state_dict(best_state)
    classifier.eval()
    for p in classifier.parameters():
        p.requires_grad_(False)
    seconds = time.monotonic() - t0
    bundle = _refit_domain(bundle, data, train, val, embeddings, store)
    calibration = None
    if cfg.calibrate:
        result = calibrate(bundle, data, list(val), cfg.device, embedding_store=store)
        bundle = ModelBundle(
            apply_calibration(bundle.config, result), bundle.classifier, bundle.sam, bundle.domain
        )
        calibration = {k: v for k, v in result.to_dict().items() if k != "grid"}
    run = ClassifierFitRun(Path(cfg.out), best_epoch, start, best, history, seconds, calibration)
    _save(bundle, cfg, run, len(train), len(val))
    return run


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _refit_domain(
    bundle: ModelBundle,
    data: SliceSet,
    train: Sequence[int],
    val: Sequence[int],
    embeddings: torch.Tensor,
    store: EmbeddingStore,
) -> ModelBundle:
    """The out-of-domain check refitted when it models the classifier's features (they
    changed); an embedding-feature check stays as it is."""
    settings = bundle.config.domain
    if settings is None or settings.features != "classifier":
        return bundle
    return fit_bundle_domain(bundle, data, list(train), list(val), settings, embeddings, store)


def _next_version(version: str) -> str:
    return str(int(version) + 1) if version.isdigit() else f"{version}.classifier"


def _save(
    bundle: ModelBundle, cfg: ClassifierFitConfig, run: ClassifierFitRun, n_train: int, n_val: int
) -> None:
    record = {
        **{k: v for k, v in asdict(cfg).items() if k != "quiet"},
        "best_epoch": run.best_epoch,
        "epochs_done": len(run.history) - 1,
        "seconds": round(run.seconds, 1),
        "n_train": n_train,
        "n_val": n_val,
        "val_start": asdict(run.start),
        "val_best": asdict(run.best),
    }
    training = {**bundle.config.training, "classifier_fit": record}
    if run.calibration is not None:
        training["calibration"] = run.calibration
    version = cfg.version or _next_version(bundle.config.version)
    out = save_bundle(with_version(bundle, version, training=training), cfg.out)
    log = out / "training"
    start_log = Path(cfg.bundle) / "training"
    if start_log.is_dir() and start_log.resolve() != log.resolve():
        shutil.copytree(start_log, log, dirs_exist_ok=True)  # split, curves, reports
    log.mkdir(exist_ok=True)
    (log / HISTORY_FILE).write_text("".join(json.dumps(h) + "\n" for h in run.history))
    plot_fit(run.history, run.best_epoch, log / PLOT_FILE)


def plot_fit(history: Sequence[dict[str, float]], best_epoch: int, path: Path) -> None:
    """Per-epoch curves: losses (left); validation AUROC, CAM Dice and the mean presence
    probability on slices with and without the structure (right); the kept epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    ep = [h["epoch"] for h in history]
    a.plot(ep[1:], [h["train_loss"] for h in history[1:]], marker=".", label="training loss")
    a.plot(ep, [h["loss"] for h in history], marker=".", label="validation loss")
    a.set_xlabel("epoch")
    a.set_ylabel("BCE + w_cam × CAM Dice loss")
    labels = {"auroc": "AUROC", "cam_dice": "CAM Dice", "p_present": "p, present"}
    for key, label in (*labels.items(), ("p_absent", "p, absent")):
        b.plot(ep, [h[key] for h in history], marker=".", label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("validation")
    b.set_ylim(0, 1.02)
    for ax in (a, b):
        ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"classifier fit (kept epoch {best_epoch}, dashed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
