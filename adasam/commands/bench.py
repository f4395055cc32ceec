"""Latency of our pipeline vs segment-anything's SamPredictor."""

from __future__ import annotations

import argparse

from adasam.settings import Settings

HELP = "latency of our pipeline vs segment-anything's SamPredictor"
USER_ERRORS = (ValueError, OSError)


def add_arguments(b: argparse.ArgumentParser) -> None:
    b.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median)")
    b.add_argument("--size", type=int, default=512, help="side of the square test slice")
    b.add_argument("--skip-vit-b", action="store_true", help="only the small SAM")
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam import bench

    return bench.main(args)
