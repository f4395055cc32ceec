"""Dice/IoU/HD95/AUROC with CAM prompts (+ GT-box oracle)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from adasam.commands.fields import comma_list
from adasam.errors import ConfigError
from adasam.settings import Settings, resolve_device

if TYPE_CHECKING:
    from adasam.training.click_eval import ClickSettings

HELP = "Dice/IoU/HD95/AUROC with CAM prompts (+ GT-box oracle)"


def add_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("--bundle", required=True, help="model bundle directory")
    e.add_argument("--data", required=True, help="slice folder or MSD/nnU-Net raw dataset")
    e.add_argument("--out", required=True, help="report.json (a .md table is written beside)")
    e.add_argument("--structures", type=comma_list, help="comma-separated (default: the model's)")
    e.add_argument("--window", help="display window (default: the bundle's)")
    e.add_argument("--size", type=int, default=256, help="slice side in pixels")
    e.add_argument("--limit", type=int, help="only the first N slices")
    e.add_argument("--no-oracle", action="store_true", help="skip the GT-box oracle")
    e.add_argument(
        "--clicks",
        type=int,
        default=20,
        help="simulated-user click protocol: clicks per run (NoC@85/90, mIoU after 1/3/5 "
        "clicks, worse-click share, from the GT box and from the CAM candidate); 0: skip it",
    )
    e.add_argument(
        "--click-slices",
        type=int,
        help="run the click protocol on at most this many slices per structure (speed)",
    )
    e.add_argument(
        "--click-stop-iou",
        type=float,
        help="end a click run once IoU reaches this (speed; default: all --clicks clicks)",
    )
    e.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads (0: PyTorch's default); use 1 per run when runs share the cores",
    )
    e.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: ADASAM_DEVICE)")
    e.add_argument(
        "--embedding-cache",
        help="folder of stored embeddings of a frozen encoder (as train writes them; default: "
        ".embeddings beside --data when the bundle's encoder is frozen)",
    )
    e.add_argument(
        "--zero-shot",
        action="store_true",
        help="also score plain LiteMedSAM with the GT box (single mask): the zero-shot row",
    )


def _click_settings(a: argparse.Namespace) -> ClickSettings | None:
    from adasam.training.click_eval import ClickSettings

    if a.clicks < 0:
        raise ConfigError(f"--clicks must be ≥ 0 (0 skips the click protocol), got {a.clicks}")
    if not a.clicks:
        return None
    try:
        return ClickSettings(a.clicks, a.click_slices, a.click_stop_iou)
    except ValueError as exc:
        raise ConfigError(f"click protocol: {exc}") from None


def run(a: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from adasam.predictor import Predictor
    from adasam.training.data import load_dataset
    from adasam.training.evaluate import evaluate_predictor, write_report

    clicks = _click_settings(a)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    device = resolve_device(a.device or settings.device)
    predictor = Predictor.from_dir(a.bundle, device, cache_size=2)
    predictor.embedding_store = _store(a, predictor)
    zero_shot = None
    if a.zero_shot:
        from adasam.manual import zero_shot_predictor

        zero_shot = zero_shot_predictor(device)
        zero_shot.embedding_store = _store(a, zero_shot)
    structures = a.structures or predictor.structures
    window = a.window or predictor.bundle.config.window
    data = load_dataset(a.data, a.size, structures, window)
    idx = list(range(len(data)))[: a.limit] if a.limit else None
    reports = evaluate_predictor(
        predictor,
        data,
        idx,
        oracle=not a.no_oracle,
        progress=True,
        clicks=clicks,
        zero_shot=zero_shot,
    )
    meta = {
        "bundle": str(a.bundle),
        "model": predictor.model_info,
        "data": str(a.data),
        "n_slices": len(idx) if idx else len(data),
        "clicks": None if clicks is None else asdict(clicks),
    }
    table = write_report(reports, Path(a.out), meta, spacing_known=not np.isnan(data.spacing).any())
    print(table)
    return 0


def _store(a: argparse.Namespace, predictor: object) -> object | None:
    """The embedding store of a frozen-encoder bundle (None when its encoder has LoRA)."""
    from adasam.embedding_store import EmbeddingStore, encoder_identity

    bundle = predictor.bundle  # type: ignore[attr-defined]
    if bundle.config.lora.encoder:
        return None
    root = Path(a.embedding_cache) if a.embedding_cache else Path(a.data).parent / ".embeddings"
    return EmbeddingStore(root, encoder_identity(bundle.config, bundle.sam))
