"""Latency of the whole pipeline per model and backend, with the accuracy guard."""

from __future__ import annotations

import argparse

from adasam.settings import Settings

HELP = "latency per stage and backend (ratios to eager PyTorch and the reference), accuracy guard"
USER_ERRORS = (ValueError, OSError)


def add_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median)")
    b.add_argument("--size", type=int, default=512, help="side of the square test slice")
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    b.add_argument(
        "--bundle",
        dest="bundles",
        action="append",
        help="bundle directory or demo name (repeatable; default: both demos; none: no bundle)",
    )
    b.add_argument(
        "--backend",
        dest="backends",
        action="append",
        help="backend to measure (repeatable; default: every one that can run here)",
    )
    b.add_argument("--skip-litemedsam", action="store_true", help="no LiteMedSAM base row")
    b.add_argument("--vit-b", action="store_true", help="add an untrained ViT-B row (slow)")
    b.add_argument(
        "--guard-per-kind", type=int, default=3, help="held-out phantoms per kind in the guard"
    )
    b.add_argument("--memory", action="store_true", help="peak memory with both demo bundles")
    b.add_argument(
        "--memory-only", action="store_true", help="only the peak-memory probe (no timings)"
    )
    b.add_argument(
        "--training-encode",
        action="store_true",
        help="only the training-embedding comparison: eager encoder against its exported fp32 "
        "graph (--runs slices)",
    )
    b.add_argument(
        "--ship",
        action="store_true",
        help="also write the demo bundles' accuracy-guard records to assets/guard/ (shipped, "
        "read by ADASAM_BACKEND=auto on a machine like this one)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam import bench
    from adasam.guard import SHIPPED_ROOT

    if args.runs < 1 or args.guard_per_kind < 1 or args.size < 32:
        raise ValueError("--runs and --guard-per-kind must be ≥ 1 and --size ≥ 32")
    args.cache_dir = settings.cache_dir or settings.data_dir / "cache"
    args.cache_bytes = settings.embed_cache_bytes
    args.cache_dtype = settings.embed_cache_dtype
    args.shipped_dir = SHIPPED_ROOT
    return bench.main(args)
