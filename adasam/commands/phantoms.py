"""Write a procedural phantom dataset (images, masks, image-level labels)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from adasam.errors import ConfigError
from adasam.settings import Settings

HELP = "write a procedural phantom dataset (images, masks, image-level labels)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from adasam.phantoms._core import KINDS
    from adasam.phantoms.io import FORMATS

    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--n", required=True, type=int, help="number of slices")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--volumes",
        action="store_true",
        help="write --n coherent 3D volumes (NIfTI image + label per volume) instead of slices",
    )
    parser.add_argument("--depth", type=int, default=32, help="slices per volume (--volumes)")
    parser.add_argument(
        "--dicom", action="store_true", help="with --volumes: also a DICOM series per volume"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam.phantoms.io import read_info, write_dataset

    if args.n < 1:
        raise ConfigError("--n must be at least 1")
    if args.seed < 0:
        raise ConfigError("--seed must be >= 0")
    if not 64 <= args.size <= 2048:
        raise ConfigError("--size must be between 64 and 2048")
    if args.dicom and not args.volumes:
        raise ConfigError("--dicom needs --volumes")
    if args.volumes:
        return _write_volumes(args)
    start = time.perf_counter()
    out = write_dataset(args.kind, args.n, args.seed, args.out, args.size, args.fmt, not args.quiet)
    info = read_info(out)
    present = ", ".join(f"{t} {info['presence'][t]}/{args.n}" for t in info["targets"])
    print(
        f"wrote {args.n} {args.kind} cases ({info['subjects']} subjects, {args.fmt}, "
        f"{args.size}px, {info['spacing_mm'][0]:.3f} mm) to {out} in "
        f"{time.perf_counter() - start:.1f} s; present: {present}; "
        f"no target: {info['no_target']}/{args.n}"
    )
    return 0


def _write_volumes(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from adasam.phantoms.volumes import generate_volume, write_volume

    if args.depth < 2:
        raise ConfigError("--depth must be at least 2")
    start = time.perf_counter()
    n_files = 0
    for index in tqdm(range(args.n), desc=f"volumes {args.kind}", disable=args.quiet):
        vol = generate_volume(args.kind, args.seed, index, depth=args.depth, size=args.size)
        n_files += len(write_volume(vol, args.out, dicom=args.dicom))
    print(
        f"wrote {args.n} {args.kind} volumes ({args.depth} slices of {args.size}px, "
        f"{n_files} files) to {args.out} in {time.perf_counter() - start:.1f} s"
    )
    return 0
