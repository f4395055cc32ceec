"""Train an ADA-SAM bundle (classifier + LoRA-SAM).

Every ``TrainConfig`` field is a flag (:mod:`adasam.commands.fields`); ``--device`` defaults
to ``ADASAM_DEVICE`` (then ``auto``).
"""

from __future__ import annotations

import argparse
import time

from adasam.commands.fields import add_fields, from_args
from adasam.settings import Settings, resolve_device
from adasam.training.train_config import TrainConfig

HELP = "train an ADA-SAM bundle (classifier + LoRA-SAM)"


def add_arguments(t: argparse.ArgumentParser) -> None:
    add_fields(t, TrainConfig, defaults={"device": None})
    t.add_argument("--resume", action="store_true", help="continue from OUT/training/")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam.training.loop import train

    cfg = from_args(TrainConfig, args, device=resolve_device(args.device or settings.device))
    start = time.perf_counter()
    _, state = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(
        f"best validation score {state.best_dice:.4f} (Dice where present, no false "
        f"positive where absent) at epoch {state.best_epoch}; "
        f"{state.step} steps in {time.perf_counter() - start:.0f} s; bundle: {args.out}"
    )
    return 0
