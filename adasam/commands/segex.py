"""SegEx: agreement report, LLM observer ratings, rating studies (see ``segex --help``).

- ``segex report [--study S] [--structure X] [--out DIR]``: print the agreement statistics;
  with ``--out`` also write the CSV tables and PNG plots.
- ``segex rate-llm [--study S] [--structure X] [--limit N] [--again]``: rate stored cases with
  the LLM observer configured in the settings (``ADASAM_LLM_*``); each answer is stored as an
  ``llm`` rating, each failure with its reason.
- ``segex study create --name N --admin A --raters a,b --per-case 2 [--structure X]
  [--cases 1,2,3] [--not-blinded] [--seed K]``, ``segex study list``.
- ``segex role --name N --role admin``: register an annotator or change their role (an admin
  creates studies and sees blinded studies' reports).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adasam.agreement import agreement_report
from adasam.segex import rate_and_store, rating_rows
from adasam.settings import Settings

if TYPE_CHECKING:
    from storage import Store

HELP = "SegEx: agreement report, LLM observer, rating studies"
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``segex`` sub-commands."""
    sub = parser.add_subparsers(dest="segex_command", required=True)
    report = sub.add_parser("report", help="print agreement statistics (CSV/PNG with --out)")
    report.add_argument("--study", help="only this study's ratings (name)")
    report.add_argument("--structure", help="only this structure")
    report.add_argument("--out", type=Path, help="folder for the CSV tables and PNG plots")

    rate = sub.add_parser("rate-llm", help="rate stored cases with the configured LLM observer")
    rate.add_argument("--study", help="the cases of this study (default: every corrected case)")
    rate.add_argument("--structure", help="only this structure")
    rate.add_argument("--limit", type=int, default=0, help="at most this many cases (0: all)")
    rate.add_argument(
        "--again", action="store_true", help="also cases this model and prompt already rated"
    )

    study = sub.add_parser("study", help="create or list rating studies")
    study_sub = study.add_subparsers(dest="study_command", required=True)
    create = study_sub.add_parser("create", help="create a study (needs an admin)")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", required=True, help="an annotator with the admin role")
    create.add_argument("--raters", required=True, help="comma-separated annotator names")
    create.add_argument("--per-case", type=int, default=2, help="independent ratings per case")
    create.add_argument("--structure", help="cases of this structure only")
    create.add_argument("--cases", help="comma-separated candidate ids (default: every corrected)")
    create.add_argument("--not-blinded", action="store_true", help="raters see others' ratings")
    create.add_argument("--seed", type=int, help="seed of the per-rater orders (default: random)")
    study_sub.add_parser("list", help="list studies and their progress")

    role = sub.add_parser("role", help="register an annotator or change their role")
    role.add_argument("--name", required=True)
    role.add_argument("--role", required=True, choices=("annotator", "reviewer", "admin"))


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _report(store: Store, args: argparse.Namespace) -> int:
    from adasam.agreement_output import report_text, write_csv, write_plots

    rows = rating_rows(store, study=args.study, structure=args.structure)
    if not rows:
        return _fail("no ratings to report on (rate some cases first)")
    report = agreement_report(rows)
    scope = f"study {args.study!r}" if args.study else "all ratings"
    print(f"SegEx agreement, {scope}: {len(rows)} ratings by {len({r.rater for r in rows})} raters")
    print(report_text(report))
    if args.out is not None:
        written = write_csv(report, rows, args.out) + write_plots(report, rows, args.out)
        print(f"wrote {', '.join(p.name for p in written)} to {args.out}")
    return 0


def _targets(store: Store, args: argparse.Namespace, model: str) -> list[int]:
    import storage
    from adasam.llm_observer import PROMPT_VERSION

    if args.study:
        ids = storage.study_case_ids(store, args.study)
        if args.structure:
            ids = [c for c in ids if storage.candidate_context(store, c)[1] == args.structure]
    else:
        ids = storage.corrected_candidates(store, args.structure)
    if not args.again:
        done = storage.llm_rated_candidates(store, model, PROMPT_VERSION)
        ids = [c for c in ids if c not in done]
    return ids[: args.limit] if args.limit > 0 else ids


def _rate_llm(store: Store, args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    config = settings.llm_config()  # ConfigError (exit 2) when off
    if args.limit < 0:
        return _fail("--limit must be >= 0")
    targets = _targets(store, args, config.model)
    rated = failed = 0
    reasons: dict[str, int] = {}
    for candidate_id in tqdm(targets, desc=f"LLM {config.model}", unit="case", file=sys.stderr):
        outcome = rate_and_store(store, config, candidate_id)
        if outcome.rating is not None:
            rated += 1
        else:
            failed += 1
            reason = outcome.failure or "unknown"
            reasons[reason] = reasons.get(reason, 0) + 1
    print(f"LLM observer {config.model}: {rated} rated, {failed} failed of {len(targets)} cases")
    for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {count} × {reason}")
    return 0 if failed == 0 else 1


def _study(store: Store, args: argparse.Namespace) -> int:
    import storage

    if args.study_command == "list":
        for s in storage.list_studies(store):
            print(
                f"{s.name}: {s.cases} cases × {s.ratings_per_case} ratings, "
                f"{s.ratings_done} done; raters {', '.join(s.raters)}; "
                f"{'blinded' if s.blinded else 'not blinded'}"
            )
        return 0
    if args.cases:
        try:
            cases = [int(c) for c in args.cases.split(",") if c.strip()]
        except ValueError:
            return _fail(f"--cases must be comma-separated candidate ids, got {args.cases!r}")
    else:
        cases = storage.corrected_candidates(store, args.structure)
    created = storage.create_study(
        store,
        name=args.name,
        admin=args.admin,
        raters=[r.strip() for r in args.raters.split(",") if r.strip()],
        candidate_ids=cases,
        ratings_per_case=args.per_case,
        blinded=not args.not_blinded,
        seed=args.seed,
    )
    print(
        f"created study {created.name!r}: {created.cases} cases, "
        f"{created.ratings_per_case} ratings each, raters {', '.join(created.raters)}"
    )
    return 0


def _role(store: Store, args: argparse.Namespace) -> int:
    import storage

    storage.ensure_annotator(store, args.name, role=args.role)
    person = storage.set_role(store, args.name, args.role)
    print(f"{person.name}: role {person.role}")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one ``segex`` sub-command; the exit status (2 and one line for user errors)."""
    import storage
    from adasam.errors import AdaSamError

    handlers: dict[str, Any] = {
        "report": lambda store: _report(store, args),
        "rate-llm": lambda store: _rate_llm(store, args, settings),
        "study": lambda store: _study(store, args),
        "role": lambda store: _role(store, args),
    }
    try:
        with storage.open_store(settings.database_url, settings.data_dir) as store:
            return int(handlers[args.segex_command](store))
    except (storage.StorageError, AdaSamError) as error:
        return _fail(str(error))
