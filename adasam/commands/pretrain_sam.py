"""Train a small SAM base on non-target structures."""

from __future__ import annotations

import argparse
import json

from adasam.commands.fields import comma_list
from adasam.settings import Settings

NAME = "pretrain-sam"
HELP = "train a small SAM base on non-target structures"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, action="append", help="slice folder (repeatable)")
    p.add_argument(
        "--exclude", required=True, type=comma_list, help="comma-separated structures never shown"
    )
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--minutes", type=float, default=15.0, help="training time budget")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--batch-size", type=int, default=8, help="slices per step")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--init", help="continue from this SAM base (.safetensors)")


def run(a: argparse.Namespace, settings: Settings) -> int:
    from adasam.training.data import load_folder
    from adasam.training.pretrain import PretrainConfig, pretrain_sam

    data = [load_folder(d, 256) for d in a.data]
    cfg = PretrainConfig(
        out=a.out,
        minutes=a.minutes,
        max_steps=a.max_steps,
        batch_size=a.batch_size,
        seed=a.seed,
        threads=a.threads,
        init=a.init,
    )
    summary = pretrain_sam(data, cfg, a.exclude or ())
    print(json.dumps({k: summary[k] for k in ("steps", "final_loss", "excluded")}))
    return 0
