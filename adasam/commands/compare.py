"""ADA-SAM vs SAM-Mix vs GT-box oracle vs U-Net on phantoms, same splits (a markdown table)."""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from adasam.settings import Settings

HELP = "ADA-SAM vs SAM-Mix vs GT-box oracle vs U-Net on phantoms (markdown table)"
ZERO_SHOT = "LiteMedSAM zero-shot, GT boxes (oracle)"
METHODS = ("ADA-SAM", "SAM-Mix", "U-Net", "SAM+LoRA, GT boxes (oracle)", ZERO_SHOT)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kinds", default="thigh-mri,liver-ct", help="comma-separated phantom kinds")
    p.add_argument("--labeled", default="5,50,10%", help="comma-separated labeled budgets")
    p.add_argument(
        "--methods",
        default=";".join(METHODS),
        help="';'-separated subset of: " + "; ".join(METHODS),
    )
    p.add_argument("--steps", type=int, default=150, help="training steps per SAM method")
    p.add_argument("--batch-size", type=int, default=4, help="labeled slices per step")
    p.add_argument("--unlabeled-batch-size", type=int, default=2, help="unlabeled per step")
    p.add_argument(
        "--lr",
        type=float,
        default=1e-3,
        help="LoRA / decoder learning rate (the LiteMedSAM demo bundles: 1e-4 with "
        "--train-decoder, which keeps the pretrained decoder)",
    )
    p.add_argument("--classifier-lr", type=float, default=1e-3, help="classifier learning rate")
    p.add_argument("--w-cam", type=float, default=1.0, help="CAM-alignment loss weight")
    p.add_argument("--train-decoder", action="store_true", help="train the whole mask decoder")
    p.add_argument("--unet-steps", type=int, default=300, help="U-Net training steps")
    p.add_argument("--unet-batch-size", type=int, default=8, help="U-Net batch size")
    p.add_argument("--size", type=int, default=256, help="phantom slice size (pixels)")
    p.add_argument("--n-train", type=int, default=400, help="training phantom slices")
    p.add_argument("--n-test", type=int, default=200, help="held-out phantom slices")
    p.add_argument("--train-seed", type=int, default=1, help="seed of the training phantoms")
    p.add_argument("--test-seed", type=int, default=999, help="seed of the held-out phantoms")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--val-max", type=int, default=20, help="validation slices per epoch")
    p.add_argument(
        "--backbone",
        default="resnet10",
        help="classifier backbone(s), comma-separated (e.g. resnet10,sam-embedding): ADA-SAM and "
        "SAM-Mix run once per backbone, the GT-box oracle with the first",
    )
    p.add_argument("--output-stride", type=int, default=16, help="classifier output stride")
    p.add_argument(
        "--sam",
        choices=("litemedsam", "small"),
        default="litemedsam",
        help="SAM base: LiteMedSAM (frozen encoder, cached embeddings) or the small phantom SAM",
    )
    p.add_argument("--sam-base", help="SAM base safetensors (pretrain-sam), for --sam small")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="start no further training run after this many minutes (0: no limit); the "
        "table then lists what was not run, and a later call resumes",
    )
    p.add_argument("--work", default="data/compare", help="working folder")
    p.add_argument("--out", default="docs/results.md", help="markdown table to write")


def run(args: argparse.Namespace, settings: Settings) -> int:
    import torch

    from adasam.training import compare

    if args.threads:
        torch.set_num_threads(args.threads)  # the U-Net too, not only the SAM runs
    argv = getattr(args, "argv", None) or []
    command = "python -m adasam " + " ".join(shlex.quote(a) for a in argv)
    result = compare.run(args)
    rows = result.rows
    from adasam.training.compare_plot import plot_rows

    picture = plot_rows(rows, Path(args.out).with_suffix(".png")) if rows else None
    text = compare.to_markdown(rows, args, command, result.skipped, picture)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(
        json.dumps([r.__dict__ for r in rows], indent=1, default=lambda o: list(o)) + "\n"
    )
    print(text)
    return 0 if rows else 1
