"""Health check of a store: database integrity, blob hashes, and rows pointing at blobs."""

from __future__ import annotations

from sqlalchemy import select, text

from storage.models import ModelVersion, Slice
from storage.store import Store


def check_store(store: Store) -> list[str]:
    """Problems found (empty when healthy): integrity check, corrupt or missing blobs."""
    problems: list[str] = []
    if store.dialect == "sqlite":
        with store.engine.connect() as connection:
            result = [row[0] for row in connection.execute(text("PRAGMA integrity_check"))]
            connection.rollback()
        if result != ["ok"]:
            problems.extend(f"integrity_check: {line}" for line in result)
    problems.extend(f"blob {digest} does not match its hash" for digest in store.blobs.verify_all())
    with store.read() as session:
        referenced = [
            (f"slice {content_hash}", blob)
            for content_hash, pixels, display in session.execute(
                select(Slice.content_hash, Slice.pixels_blob, Slice.display_blob)
            )
            for blob in (pixels, display)
        ]
        referenced += [
            (f"model version {name}", ref)
            for name, ref in session.execute(select(ModelVersion.name, ModelVersion.bundle_ref))
        ]
    problems.extend(
        f"{owner} references missing blob {blob}"
        for owner, blob in referenced
        if not store.blobs.has(blob)
    )
    return problems
