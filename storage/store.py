"""The handle every repository function takes: database engine, sessions and blob store."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from storage.blobs import BlobStore
from storage.engine import make_engine, reader_engine
from storage.migrate import upgrade_database

if TYPE_CHECKING:
    from storage.remotes import Remote


class Store:
    """An open database plus the blob store under the data directory.

    Thread-safe: each :meth:`write` / :meth:`read` block uses its own session and connection.
    Repository functions (``record_slice(store, ...)`` and friends) run one transaction each.
    """

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = Path(data_dir)
        self.blobs = BlobStore(self.data_dir / "blobs")
        self._writer = sessionmaker(bind=engine, expire_on_commit=False)
        self._reader = sessionmaker(bind=reader_engine(engine), expire_on_commit=False)
        self._write_lock: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql`` (or whatever back-end the URL names)."""
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction: committed on success, rolled back on any error.

        On SQLite, threads of one process queue on a lock before ``BEGIN IMMEDIATE``: they
        would serialise on the database lock anyway, and SQLite's busy handler waits by
        sleeping, which wastes most of the time when many threads contend.
        """
        with self._write_lock, self._writer() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (never blocks on or blocks writers in SQLite WAL mode)."""
        with self._reader() as session, session.begin():
            yield session

    def serialize(self, session: Session, key: int) -> None:
        """Serialise the rest of this transaction with others using ``key``.

        SQLite write transactions are already serial (``BEGIN IMMEDIATE``); on PostgreSQL this
        takes a transaction-scoped advisory lock.
        """
        if self.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(
    database_url: str,
    data_dir: Path,
    *,
    upgrade: bool = True,
    restore_from: Remote | None = None,
) -> Store:
    """Open (creating and upgrading when needed) the database and the blob store.

    ``data_dir`` holds the blobs and materialised model bundles; the database is wherever
    ``database_url`` points (by default a SQLite file inside ``data_dir``). With
    ``restore_from``, a missing SQLite database is first restored from that backup remote
    (see :func:`storage.backup.restore_if_missing`).
    """
    if restore_from is not None:
        from storage.backup import restore_if_missing  # backup imports this module

        restore_if_missing(database_url, data_dir, restore_from)
    engine = make_engine(database_url)
    try:
        if upgrade:
            upgrade_database(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine, data_dir)
