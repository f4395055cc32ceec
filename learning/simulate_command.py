"""Simulated annotation session: N unseen cases, loop off / AuxOL / fine-tuning / both.

The simulated clinician corrects each proposal by the click protocol (up to 20 clicks, stop at
IoU 0.9), submits the ground truth and rates it; fine-tuning runs every ``--every`` cases in
process (with the gate). Writes ``simulate.md`` (the table), ``simulate.json`` and
``simulate.png`` (NoC@90 and first-proposal Dice per block) to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adasam.errors import ConfigError
from adasam.settings import Settings, resolve_device

NAME = "simulate"
HELP = "simulated annotation session: NoC@85/90 and Dice per block, loop off/AuxOL/FT/both"


def __getattr__(name: str) -> object:
    """``USER_ERRORS`` on demand, so ``python -m adasam`` loads no storage until a learning
    command runs (PEP 562)."""
    if name == "USER_ERRORS":
        from storage.errors import StorageError

        return (StorageError,)
    raise AttributeError(name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True, help="model bundle to start from")
    p.add_argument("--data", required=True, help="slice folder of unseen cases (with masks)")
    p.add_argument("--cases", type=int, default=200, help="cases, in order")
    p.add_argument("--every", type=int, default=40, help="fine-tune every K cases")
    p.add_argument("--block", type=int, help="cases per reported block (default: --every)")
    p.add_argument(
        "--arms",
        default="off,auxol,finetune,both",
        help="comma-separated arms: off, auxol, finetune, both, finetune-unweighted (fine-tuning "
        "without the SegEx rating weights: the ablation)",
    )
    p.add_argument("--out", required=True, help="folder for simulate.md/.json/.png")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per fine-tuning job")
    p.add_argument("--replay-ratio", type=float, default=1.0, help="replayed slices per case")
    p.add_argument("--no-rating-weights", action="store_true", help="ablation")
    p.add_argument(
        "--click-rounds",
        type=int,
        default=2,
        help="corrective-click rounds per trained item in each job (0: box/CAM prompts only)",
    )
    p.add_argument("--device", help="cpu, cuda or auto (default: ADASAM_DEVICE)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--gate-clicks", type=int, default=20, help="click protocol in the gate")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="stop after the first case past T minutes (all arms advance case by case, so "
        "they stop at the same case)",
    )
    p.add_argument(
        "--attach",
        action="store_true",
        help="also copy simulate.png/.md/.json into BUNDLE/training/ (the studio's Models tab "
        "shows the plot of the active version's bundle)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from adasam.finetune import FinetuneConfig
    from adasam.gate import GateConfig
    from learning.job import JobOptions
    from learning.simulate import SimulationConfig, simulate

    if not Path(args.bundle).is_dir() or not Path(args.data).is_dir():
        raise ConfigError("--bundle and --data must be existing folders")
    try:
        cfg = SimulationConfig(
            cases=args.cases,
            every=args.every,
            block=args.block or args.every,
            arms=tuple(a.strip() for a in args.arms.split(",") if a.strip()),
            threads=args.threads,
            quiet=args.quiet,
            max_minutes=args.max_minutes,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    device = resolve_device(args.device or settings.device)
    opts = JobOptions(
        base_bundle=Path(args.bundle),
        finetune=FinetuneConfig(
            steps=args.steps,
            replay_ratio=args.replay_ratio,
            rating_weights=not args.no_rating_weights,
            click_rounds=args.click_rounds,
            device=device,
            threads=args.threads,
        ),
        gate=GateConfig(clicks=args.gate_clicks),
        heartbeat_seconds=30.0,
    )
    results = simulate(Path(args.bundle), Path(args.data), cfg, opts, Path(args.out))
    print((Path(args.out) / "simulate.md").read_text(), end="")
    for r in results:
        for job in r.jobs:
            print(f"{r.arm}, after case {job['after_case']}: {job['message']}")
    print(f"wrote {args.out}/simulate.md, simulate.json, simulate.png")
    if args.attach:
        import shutil

        training = Path(args.bundle) / "training"
        training.mkdir(exist_ok=True)
        for name in ("simulate.md", "simulate.json", "simulate.png"):
            shutil.copyfile(Path(args.out) / name, training / name)
        print(f"attached them to {training}")
    return 0
