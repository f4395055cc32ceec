"""Model versions: register fine-tuned bundles, activate one, roll back to its parent."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from storage import validate
from storage.errors import InvalidInputError, NotFoundError, StorageError
from storage.models import Correction, ModelVersion, utcnow
from storage.records import ModelVersionRecord, model_version_record
from storage.store import Store

ACTIVATION_LOCK_KEY = 0x4144_4153_0002


def register_model_version(
    store: Store,
    *,
    name: str,
    bundle_dir: Path,
    parent_id: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    trained_through_correction_id: int | None = None,
    activate: bool = False,
) -> ModelVersionRecord:
    """Copy a model bundle into the blob store and register it as a new version.

    ``trained_through_correction_id`` is the newest correction the version was trained on:
    :func:`storage.training.training_examples_since` starts after it. The bundle is stored
    before the row, so a registered version can always be materialised.
    """
    name = validate.text(name, "model version name", max_length=100)
    metrics_json = validate.json_object(metrics, "metrics")
    if trained_through_correction_id is not None:
        validate.non_negative_int(trained_through_correction_id, "trained_through_correction_id")
    bundle_ref = store.blobs.put_tree(Path(bundle_dir))
    with store.write() as session:
        if session.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
            raise InvalidInputError(f"a model version named {name!r} already exists")
        if parent_id is not None and session.get(ModelVersion, parent_id) is None:
            raise NotFoundError(f"unknown parent model version {parent_id}")
        if (
            trained_through_correction_id is not None
            and session.get(Correction, trained_through_correction_id) is None
        ):
            raise NotFoundError(f"unknown correction {trained_through_correction_id}")
        row = ModelVersion(
            name=name,
            parent_id=parent_id,
            bundle_ref=bundle_ref,
            metrics=metrics_json,
            trained_through_correction_id=trained_through_correction_id,
        )
        session.add(row)
        session.flush()
        if activate:
            _activate(store, session, row)
        return model_version_record(row)


def _activate(store: Store, session: Session, row: ModelVersion) -> None:
    store.serialize(session, ACTIVATION_LOCK_KEY)
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.is_active.is_(True), ModelVersion.id != row.id)
        .values(is_active=False)
    )
    session.flush()
    row.is_active = True
    row.activated_at = utcnow()
    session.flush()


def activate_model_version(store: Store, version_id: int) -> ModelVersionRecord:
    """Make ``version_id`` the one active version (the studio reloads it)."""
    with store.write() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise NotFoundError(f"unknown model version {version_id}")
        _activate(store, session, row)
        return model_version_record(row)


def active_model_version(store: Store) -> ModelVersionRecord | None:
    """The active version, or ``None`` when none was activated yet."""
    with store.read() as session:
        row = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
        return None if row is None else model_version_record(row)


def rollback(store: Store) -> ModelVersionRecord:
    """Re-activate the parent of the active version (the version it was fine-tuned from)."""
    with store.write() as session:
        store.serialize(session, ACTIVATION_LOCK_KEY)
        current = session.scalar(select(ModelVersion).where(ModelVersion.is_active.is_(True)))
        if current is None:
            raise StorageError("no model version is active, so there is nothing to roll back")
        if current.parent_id is None:
            raise StorageError(
                f"model version {current.name!r} has no parent to roll back to; "
                "activate another version explicitly"
            )
        parent = session.get(ModelVersion, current.parent_id)
        assert parent is not None  # foreign key
        _activate(store, session, parent)
        return model_version_record(parent)


def get_model_version(store: Store, version_id: int) -> ModelVersionRecord:
    """The version ``version_id``."""
    with store.read() as session:
        row = session.get(ModelVersion, version_id)
        if row is None:
            raise NotFoundError(f"unknown model version {version_id}")
        return model_version_record(row)


def list_model_versions(store: Store) -> list[ModelVersionRecord]:
    """All versions, oldest first."""
    with store.read() as session:
        return [
            model_version_record(row)
            for row in session.scalars(select(ModelVersion).order_by(ModelVersion.id))
        ]


def bundle_path(store: Store, version_id: int) -> Path:
    """A local folder holding the version's bundle (materialised from the blob store once)."""
    record = get_model_version(store, version_id)
    return store.blobs.materialize_tree(
        record.bundle_ref, store.data_dir / "bundles" / record.bundle_ref
    )
