"""Model versions on a Hugging Face Hub model repository (or a local folder standing in).

The fine-tuning job runs where the GPU is (a GPU Space, a Hub job, a workstation); the studio
runs elsewhere. The job **publishes** its versions to a model repository and the studio **pulls**
the newly activated one into its own store, where the model catalog's hot reload serves it.

Layout on the remote (POSIX paths)::

    versions/<name>/bundle/...      the version's bundle folder, file for file
    versions/<name>/version.json    name, parent name, metrics (gate, lineage, training),
                                    bundle_ref, trained_through_correction_id, created_at
    active.json                     {"name": <the active version>, "activated_at": ...}

One publish is one Hub commit (on a folder: files copied atomically in order, ``active.json``
last), so a reader never sees an ``active.json`` naming a version whose files are missing.
Versions are matched by name (a name is registered once per store, never reused).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from storage.errors import StorageError
from storage.model_versions import (
    activate_model_version,
    active_model_version,
    bundle_path,
    list_model_versions,
    register_model_version,
)
from storage.models import Correction
from storage.records import ModelVersionRecord
from storage.remotes import HubRemote, LocalFolderRemote, Remote
from storage.store import Store

ACTIVE_PATH = "active.json"
VERSIONS_PREFIX = "versions/"


def model_remote(target: str, *, token: str | None = None) -> Remote:
    """The remote named by ``target``: a folder (absolute path, ``./``, ``~`` or ``file:``
    prefix) or a Hugging Face Hub model repository id ``owner/name``."""
    target = target.strip()
    if not target:
        raise StorageError("no model repository given (a Hub id owner/name or a folder)")
    if target.startswith("file:"):
        return LocalFolderRemote(Path(target.removeprefix("file:")).expanduser())
    if target.startswith(("/", "./", "../", "~")):
        return LocalFolderRemote(Path(target).expanduser())
    if target.count("/") != 1:
        raise StorageError(
            f"model repository {target!r}: give a Hub id owner/name or a folder path"
        )
    return HubRemote(target, token=token, repo_type="model")


def _version_dir(name: str) -> str:
    if "/" in name or name in (".", ".."):
        raise StorageError(f"model version name {name!r} cannot be a remote folder name")
    return f"{VERSIONS_PREFIX}{name}/"


def _meta(record: ModelVersionRecord, parent: str | None) -> dict[str, Any]:
    return {
        "name": record.name,
        "parent": parent,
        "bundle_ref": record.bundle_ref,
        "metrics": record.metrics,
        "trained_through_correction_id": record.trained_through_correction_id,
        "created_at": record.created_at.isoformat(),
    }


@dataclass(frozen=True)
class PublishReport:
    """What one publish pushed: the versions new on the remote and the active one."""

    remote: str
    pushed: tuple[str, ...]
    active: str | None


def publish(store: Store, remote: Remote) -> PublishReport:
    """Push every version the remote lacks (inactive ones too, with their gate verdict) and
    ``active.json`` naming the store's active version, in one commit."""
    versions = list_model_versions(store)
    names = {v.id: v.name for v in versions}
    present = remote.list_files()
    active = active_model_version(store)
    with tempfile.TemporaryDirectory(prefix="adasam-publish-") as tmp:
        files: dict[str, Path] = {}
        pushed = []
        for v in versions:
            folder = _version_dir(v.name)
            if f"{folder}version.json" in present:
                continue
            bundle = bundle_path(store, v.id)
            for path in sorted(bundle.rglob("*")):
                if path.is_file():
                    files[f"{folder}bundle/{path.relative_to(bundle).as_posix()}"] = path
            meta = Path(tmp) / f"{v.id}.json"
            parent = None if v.parent_id is None else names[v.parent_id]
            meta.write_text(json.dumps(_meta(v, parent), indent=2) + "\n")
            files[f"{folder}version.json"] = meta
            pushed.append(v.name)
        marker = None
        if active is not None:
            marker = Path(tmp) / ACTIVE_PATH
            stamp = None if active.activated_at is None else active.activated_at.isoformat()
            marker.write_text(json.dumps({"name": active.name, "activated_at": stamp}) + "\n")
            files[ACTIVE_PATH] = marker  # last: a folder remote copies in order
        if files:
            message = f"ADA-SAM model versions: {', '.join(pushed) or 'no new version'}"
            if active is not None:
                message += f"; active {active.name}"
            remote.push(files, message)
    return PublishReport(remote.describe(), tuple(pushed), None if active is None else active.name)


def _read_json(remote: Remote, path: str, tmp: Path, *, fetched: bool = False) -> dict[str, Any]:
    if not fetched:
        remote.fetch([path], tmp)
    try:
        value = json.loads((tmp / path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StorageError(f"{path} on {remote.describe()} is not readable JSON: {exc}") from None
    if not isinstance(value, dict):
        raise StorageError(f"{path} on {remote.describe()} is not a JSON object")
    return value


def remote_active(remote: Remote) -> dict[str, Any] | None:
    """The remote's ``active.json`` (None when nothing was published yet)."""
    if ACTIVE_PATH not in remote.list_files():
        return None
    with tempfile.TemporaryDirectory(prefix="adasam-pull-") as tmp:
        return _read_json(remote, ACTIVE_PATH, Path(tmp))


@dataclass(frozen=True)
class PullReport:
    """What one pull changed: versions registered here, and the one activated (None: the
    active version was already the remote's)."""

    remote: str
    registered: tuple[str, ...]
    activated: str | None
    marker: dict[str, Any] | None


def _known_correction(store: Store, correction_id: Any) -> int | None:
    if not isinstance(correction_id, int):
        return None
    with store.read() as session:
        found = session.scalar(select(Correction.id).where(Correction.id == correction_id))
    return found


def _register_missing(store: Store, remote: Remote, files: set[str], tmp: Path) -> list[str]:
    """Register every remote version this store lacks, parents before children (only the
    ``version.json`` of versions missing here is downloaded)."""
    local = {v.name: v for v in list_model_versions(store)}
    wanted = sorted(
        p
        for p in files
        if p.startswith(VERSIONS_PREFIX)
        and p.endswith("/version.json")
        and p.split("/")[1] not in local
    )
    if wanted:
        remote.fetch(wanted, tmp)
    metas = {}
    for path in wanted:
        meta = _read_json(remote, path, tmp, fetched=True)
        metas[str(meta["name"])] = meta
    registered: list[str] = []
    pending = [n for n in metas if n not in local]
    while pending:
        ready = [n for n in pending if metas[n].get("parent") in (None, *local)]
        if not ready:
            raise StorageError(
                f"model versions {pending} on {remote.describe()} name parents that are "
                "neither here nor there; nothing more pulled"
            )
        for name in ready:
            meta = metas[name]
            folder = _version_dir(name)
            paths = [p for p in files if p.startswith(f"{folder}bundle/")]
            remote.fetch(paths, tmp)
            parent = meta.get("parent")
            metrics = dict(meta.get("metrics") or {})
            metrics["pulled_from"] = remote.describe()
            through = meta.get("trained_through_correction_id")
            if through is not None and _known_correction(store, through) is None:
                metrics["remote_trained_through_correction_id"] = through
                through = None
            local[name] = register_model_version(
                store,
                name=name,
                bundle_dir=tmp / folder / "bundle",
                parent_id=None if parent is None else local[parent].id,
                metrics=metrics,
                trained_through_correction_id=through,
            )
            registered.append(name)
            pending.remove(name)
    return registered


def pull(store: Store, remote: Remote, *, activate: bool = True) -> PullReport:
    """Register the remote's versions this store lacks and, with ``activate``, make the
    version the remote's ``active.json`` names the active one here.

    Raises:
        BackupError: the remote cannot be reached or lacks a file it lists.
        StorageError: the remote names an active version or a parent that it lacks.
    """
    files = remote.list_files()
    with tempfile.TemporaryDirectory(prefix="adasam-pull-") as tmp:
        registered = _register_missing(store, remote, files, Path(tmp))
        marker = _read_json(remote, ACTIVE_PATH, Path(tmp)) if ACTIVE_PATH in files else None
    activated = None
    if activate and marker is not None:
        name = str(marker.get("name"))
        current = active_model_version(store)
        if current is None or current.name != name:
            by_name = {v.name: v for v in list_model_versions(store)}
            if name not in by_name:
                raise StorageError(f"{remote.describe()} names {name!r} active but lacks it")
            activated = activate_model_version(store, by_name[name].id).name
    return PullReport(remote.describe(), tuple(registered), activated, marker)
