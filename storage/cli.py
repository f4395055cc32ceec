"""``python -m storage``: upgrade, stats, check, export, backup, restore, bench.

Reads :class:`storage.settings.StorageLocation` (``ADASAM_DATA_DIR``, ``DATABASE_URL``); the
library functions it calls take plain values.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from storage.backup import backup, restore_if_missing
from storage.bench import run_benchmark
from storage.check import check_store
from storage.errors import StorageError
from storage.exports import FORMATS, export_dataset
from storage.remotes import HubRemote, LocalFolderRemote, Remote
from storage.settings import StorageLocation
from storage.stats import stats
from storage.store import open_store


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("upgrade", help="create or upgrade the database schema")
    commands.add_parser("stats", help="print counts and rating statistics as JSON")
    commands.add_parser("check", help="integrity check of the database and the blob store")

    export = commands.add_parser("export", help="export final masks with their slices")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("--out", required=True, type=Path, help="new or empty folder")
    export.add_argument("--structure", action="append", help="only this structure (repeatable)")
    export.add_argument("--modality", help="only slices of this modality")
    export.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset id")
    export.add_argument("--dataset-name", default="AdaSamStudio", help="nnU-Net dataset name")

    for name, text in (("backup", "push a snapshot"), ("restore", "restore when missing")):
        command = commands.add_parser(name, help=f"{text} (SQLite)")
        target = command.add_mutually_exclusive_group(required=True)
        target.add_argument("--hub-repo", help="Hugging Face dataset repository id")
        target.add_argument("--folder", type=Path, help="a local folder instead of the Hub")

    bench = commands.add_parser("bench", help="measure write throughput (rows/s)")
    bench.add_argument("--seconds", type=float, default=10.0)
    bench.add_argument("--threads", type=int, default=8)
    bench.add_argument(
        "--database-url",
        help="an EMPTY scratch database (default: a temporary SQLite file)",
    )
    return parser


def _remote(args: argparse.Namespace) -> Remote:
    if args.hub_repo:
        return HubRemote(args.hub_repo)
    return LocalFolderRemote(args.folder)


def _bench(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="adasam-bench-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.sqlite3"
        with open_store(url, Path(tmp)) as store:
            if stats(store).slices:
                print(f"refusing to benchmark on {url}: it is not empty", file=sys.stderr)
                return 2
            result = run_benchmark(store, seconds=args.seconds, threads=args.threads)
            print(
                f"{store.dialect}: {result.rows} rows ({result.corrections} corrections + "
                f"{result.ratings} ratings) in {result.seconds:.1f} s with {args.threads} "
                f"threads = {result.rows_per_second:.0f} rows/s"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "bench":
        return _bench(args)

    settings = StorageLocation.from_env()
    try:
        if args.command == "restore":
            restored = restore_if_missing(settings.database_url, settings.data_dir, _remote(args))
            print("restored" if restored else "nothing restored (database present or no backup)")
            return 0
        with open_store(settings.database_url, settings.data_dir) as store:
            if args.command == "upgrade":
                print(f"database at the newest schema: {settings.database_url}")
            elif args.command == "stats":
                print(json.dumps(asdict(stats(store)), indent=2))
            elif args.command == "check":
                problems = check_store(store)
                for problem in problems:
                    print(problem)
                print("ok" if not problems else f"{len(problems)} problems")
                return 1 if problems else 0
            elif args.command == "export":
                summary = export_dataset(
                    store,
                    args.format,
                    args.out,
                    structures=args.structure,
                    modality=args.modality,
                    dataset_id=args.dataset_id,
                    dataset_name=args.dataset_name,
                )
                print(
                    f"exported {summary.masks} masks on {summary.slices} slices to {summary.root}"
                )
                for reason in summary.skipped:
                    print(f"skipped {reason}")
            elif args.command == "backup":
                report = backup(store, _remote(args))
                print(
                    f"pushed a {report.database_bytes}-byte snapshot and {report.blobs_pushed} "
                    f"new blobs to {report.remote}"
                )
    except StorageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
