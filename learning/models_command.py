"""List the model versions (lineage, gate scores), activate one, or roll back to the parent.

The studio serves the active version; it picks up a change within a few seconds, no restart.
"""

from __future__ import annotations

import argparse

from adasam.settings import Settings

NAME = "models"
HELP = "model versions: list (lineage, gate verdict), activate ID, rollback"


def __getattr__(name: str) -> object:
    """``USER_ERRORS`` on demand, so ``python -m adasam`` loads no storage until a learning
    command runs (PEP 562)."""
    if name == "USER_ERRORS":
        from storage.errors import StorageError

        return (StorageError,)
    raise AttributeError(name)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "activate", "rollback"), help="what to do")
    p.add_argument("version", nargs="?", type=int, help="version id (activate)")
    p.add_argument(
        "--push-to",
        help="after activate/rollback, publish to this Hub model repo or folder (default: "
        "ADASAM_MODEL_REPO; 'none': do not), so studios pulling from it follow",
    )


def describe(version) -> str:  # type: ignore[no-untyped-def]
    """One line per version: id, name, parent, active flag, gate verdict and scores."""
    gate = version.metrics.get("gate") or {}
    training = version.metrics.get("training") or {}
    cand = gate.get("candidate") or {}
    scores = (
        f" held-out Dice {cand.get('dice')}, NoC@90 {cand.get('noc90')} (n={cand.get('cases')})"
        if cand.get("cases")
        else ""
    )
    verdict = f"; gate: {gate.get('reason')}" if gate else ""
    seconds = f"; trained {training.get('seconds')} s" if training else ""
    parent = "-" if version.parent_id is None else str(version.parent_id)
    flag = "*" if version.is_active else " "
    return f"{flag} {version.id:>4}  {version.name}  parent {parent}{seconds}{scores}{verdict}"


def run(args: argparse.Namespace, settings: Settings) -> int:
    from learning.finetune_command import publisher
    from storage import activate_model_version, list_model_versions, open_store, rollback

    push = publisher(args, settings) if args.action != "list" else None
    store = open_store(settings.database_url, settings.data_dir)
    try:
        if args.action == "activate":
            if args.version is None:
                from storage.errors import StorageError

                raise StorageError("activate needs a version id: models activate ID")
            done = activate_model_version(store, args.version)
            print(f"activated {done.name} (id {done.id})")
        elif args.action == "rollback":
            done = rollback(store)
            print(f"rolled back: {done.name} (id {done.id}) is active again")
        if push is not None:
            push(store)
        else:
            versions = list_model_versions(store)
            if not versions:
                print("no model versions yet (the first finetune job registers the base)")
            for v in versions:
                print(describe(v))
        return 0
    finally:
        store.close()
