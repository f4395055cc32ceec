"""Fine-tune the active model version on the corrections stored since it, gate it, register it.

``--once`` (default) runs one job and exits; ``--watch`` keeps running beside the studio and
starts a job when ``--every-corrections`` new corrections exist, or every ``--every-minutes``
when at least one does. One job at a time, across processes and machines sharing the database:
a second job refuses and names the holder; a holder that died is taken over once its
heartbeat is older than ``--stale-minutes``. SIGTERM (a Space or container stopping) and
Ctrl-C stop ``--watch`` cleanly: a job in progress is marked failed and registers nothing.

``--push-to`` (default ``ADASAM_MODEL_REPO``) publishes the versions to a Hugging Face Hub
model repository, or a folder standing in for it, after every job; a studio elsewhere pulls
the newly activated one (:mod:`storage.model_hub`, :mod:`studio.model_pull`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import timedelta
from pathlib import Path

from adasam.errors import ConfigError
from adasam.settings import Settings, resolve_device

NAME = "finetune"
HELP = "fine-tune on stored corrections, gate, register (--once or --watch)"


def __getattr__(name: str) -> object:
    """``USER_ERRORS`` on demand, so ``python -m adasam`` loads no storage until a learning
    command runs (PEP 562)."""
    if name == "USER_ERRORS":
        from storage.errors import StorageError

        return (StorageError,)
    raise AttributeError(name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one job and exit (default)")
    mode.add_argument("--watch", action="store_true", help="keep running; train when due")
    p.add_argument(
        "--every-corrections", type=int, default=10, help="watch: train after N new corrections"
    )
    p.add_argument(
        "--every-minutes", type=float, help="watch: also train every M minutes if any is new"
    )
    p.add_argument("--poll-seconds", type=float, default=15.0, help="watch: how often to look")
    p.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: ADASAM_DEVICE)")
    p.add_argument("--max-minutes", type=float, help="stop training at the first epoch end past T")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per job")
    p.add_argument("--batch-size", type=int, default=4, help="slices per step")
    p.add_argument("--lr", type=float, default=5e-4, help="LoRA/decoder learning rate")
    p.add_argument(
        "--replay-ratio", type=float, default=1.0, help="original slices replayed per correction"
    )
    p.add_argument(
        "--no-rating-weights",
        action="store_true",
        help="ablation: do not draw major-edit/rejected cases more often",
    )
    p.add_argument(
        "--heldout-share", type=float, default=0.2, help="share of cases held out for the gate"
    )
    p.add_argument(
        "--min-heldout",
        type=int,
        help="fewest held-out corrections to judge, ≥ 2 (default: the gate's, 8); fewer keep "
        "the candidate inactive",
    )
    p.add_argument("--clicks", type=int, default=20, help="click-protocol clicks in the gate")
    p.add_argument(
        "--click-rounds",
        type=int,
        default=2,
        help="corrective-click rounds per trained item in each job (0: box/CAM prompts only)",
    )
    p.add_argument(
        "--min-corrections", type=int, default=1, help="--once: fewest new corrections to train"
    )
    p.add_argument(
        "--stale-minutes", type=float, default=120.0, help="take over a job silent this long"
    )
    p.add_argument(
        "--bundle", help="root bundle when no version is active (default: ADASAM_BUNDLE)"
    )
    p.add_argument("--seed", type=int, default=0, help="replay sample and batches")
    p.add_argument(
        "--push-to",
        help="publish versions to this Hub model repo (owner/name) or folder after each job "
        "(default: ADASAM_MODEL_REPO; 'none': do not)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def options(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    """The job options of these arguments (ConfigError on a bad value)."""
    from adasam.finetune import FinetuneConfig
    from adasam.gate import GateConfig
    from learning.job import JobOptions

    if args.every_corrections < 1:
        raise ConfigError(f"--every-corrections must be ≥ 1, got {args.every_corrections}")
    if args.every_minutes is not None and not args.every_minutes > 0:
        raise ConfigError(f"--every-minutes must be > 0, got {args.every_minutes}")
    if not args.stale_minutes > 0 or not args.poll_seconds > 0:
        raise ConfigError("--stale-minutes and --poll-seconds must be > 0")
    device = resolve_device(args.device or settings.device)
    return JobOptions(
        base_bundle=Path(args.bundle) if args.bundle else settings.bundle_dir,
        finetune=FinetuneConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            replay_ratio=args.replay_ratio,
            rating_weights=not args.no_rating_weights,
            click_rounds=args.click_rounds,
            device=device,
            threads=args.threads,
            max_minutes=args.max_minutes,
            seed=args.seed,
        ),
        gate=GateConfig(
            heldout_share=args.heldout_share,
            clicks=args.clicks,
            **({} if args.min_heldout is None else {"min_cases": args.min_heldout}),
        ),
        min_corrections=args.min_corrections,
        stale_after=timedelta(minutes=args.stale_minutes),
        heartbeat_seconds=min(30.0, args.stale_minutes * 60 / 4),
        progress=not args.quiet,
    )


def _setup_log(settings: Settings) -> None:
    folder = settings.data_dir / "finetune"
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "finetune.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger("adasam.finetune")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def publisher(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    """A function publishing the store's versions, or None when no repository is set."""
    from adasam.settings import model_repo

    target = settings.model_repo if args.push_to is None else args.push_to
    if not target or target.strip().lower() == "none":
        return None
    from storage.model_hub import model_remote, publish

    remote = model_remote(model_repo(target), token=settings.hub_token or None)

    def push(store) -> None:  # type: ignore[no-untyped-def]
        report = publish(store, remote)
        pushed = ", ".join(report.pushed) or "no new version"
        print(f"published to {report.remote}: {pushed}; active {report.active}", flush=True)

    return push


def _stop_on_sigterm() -> None:
    """SIGTERM ends the process like Ctrl-C (KeyboardInterrupt), so a stopping container
    ends a job cleanly (marked failed, nothing registered) instead of mid-write."""
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from learning.job import run_once
    from storage import open_store

    opts = options(args, settings)
    push = publisher(args, settings)
    _setup_log(settings)
    store = open_store(settings.database_url, settings.data_dir)
    try:
        if not args.watch:
            outcome = run_once(store, opts)
            print(f"job {outcome.job_id}: {outcome.message}", flush=True)
            logging.getLogger("adasam.finetune").info("job %s: %s", outcome.job_id, outcome.message)
            if push is not None:
                push(store)
            return 0
        _stop_on_sigterm()
        return watch(store, opts, args, push)
    finally:
        store.close()


def watch(store, opts, args: argparse.Namespace, push=None) -> int:  # type: ignore[no-untyped-def]
    """Run jobs when due until interrupted (Ctrl-C or SIGTERM ends it cleanly); ``push``
    publishes after each job (retried at the next look when the repository was unreachable)."""
    from dataclasses import replace

    from learning.cases import pending_count
    from learning.job import run_once
    from storage import BackupError, JobLockedError, active_model_version

    log = logging.getLogger("adasam.finetune")
    last = time.monotonic()
    unpublished = push is not None
    print(
        f"watching for corrections (every {args.every_corrections} corrections"
        + (f" or {args.every_minutes} min" if args.every_minutes else "")
        + "); Ctrl-C stops",
        flush=True,
    )
    try:
        while True:
            active = active_model_version(store)
            after = None if active is None else active.trained_through_correction_id
            pending = pending_count(store, after, opts.gate)
            timed = args.every_minutes is not None and (
                time.monotonic() - last >= args.every_minutes * 60
            )
            if pending >= args.every_corrections or (timed and pending > 0):
                try:
                    outcome = run_once(store, replace(opts, min_corrections=1))
                    print(f"job {outcome.job_id}: {outcome.message}", flush=True)
                    log.info("job %s: %s", outcome.job_id, outcome.message)
                    unpublished = push is not None
                except JobLockedError as exc:
                    print(f"waiting: {exc}", file=sys.stderr, flush=True)
                last = time.monotonic()
            if unpublished:
                try:
                    push(store)
                    unpublished = False
                except BackupError as exc:
                    print(f"not published yet: {exc}", file=sys.stderr, flush=True)
                    log.warning("not published yet: %s", exc)
            time.sleep(args.poll_seconds)
    except KeyboardInterrupt:
        print("stopped", flush=True)
        return 0
