"""3D Dice, corrections and time of propagation vs per-slice CAM prompts on phantom volumes."""

from __future__ import annotations

import argparse

from adasam.settings import Settings

HELP = "propagation from one accepted slice vs per-slice CAM prompts, on phantom volumes"
USER_ERRORS = (ValueError, OSError)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True, help="model bundle directory")
    p.add_argument("--kind", required=True, choices=("thigh-mri", "liver-ct"))
    p.add_argument("--seed", type=int, default=2027, help="phantom seed (never 999: validation)")
    p.add_argument("--n", type=int, default=3, help="volumes")
    p.add_argument("--depth", type=int, default=24, help="slices per volume")
    p.add_argument("--size", type=int, default=256, help="slice side in pixels")
    p.add_argument("--ok-dice", type=float, default=0.9, help="a slice under this needs a fix")
    p.add_argument("--box-margin", type=int, default=5, help="pixels added to the box")
    p.add_argument("--min-score", type=float, default=0.5, help="stop below this predicted IoU")
    p.add_argument("--use-logits", action="store_true", help="also pass the previous logits")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="", help="write the rows as JSON here")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam import volume_bench

    if args.n < 1 or args.depth < 2:
        raise ValueError("--n must be ≥ 1 and --depth ≥ 2")
    return volume_bench.main(args)
