"""SQLAlchemy engine set-up for SQLite (embedded default) and any other URL (PostgreSQL).

SQLite gets what a multi-writer studio needs: WAL journal, foreign keys, a busy timeout,
``synchronous=FULL`` (a committed correction survives a power cut, not only a crash) and
``BEGIN IMMEDIATE`` for write transactions, so that two writers never both hold a read lock and
then deadlock on the upgrade to a write lock (the classic source of "database is locked" even
with a busy timeout). Read-only work goes through :func:`reader_engine`, which begins deferred
transactions and so never waits for writers in WAL mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 60_000
"""How long a SQLite writer waits for the write lock before giving up."""

READ_ONLY_OPTION = "adasam_read_only"
"""Execution option that makes a SQLite transaction begin deferred instead of immediate."""


def is_sqlite(url: str) -> bool:
    """Whether ``url`` is a SQLite URL."""
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for other back-ends and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the project's connection settings applied.

    In-memory SQLite is refused: every connection would see a different empty database.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            raise ValueError(
                f"in-memory SQLite ({url!r}) cannot be shared between connections; "
                "use a file URL such as sqlite:////data/adasam.sqlite3"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=16,
            max_overflow=16,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=16, max_overflow=16)


def reader_engine(engine: Engine) -> Engine:
    """A view of ``engine`` (same pool) whose transactions only read, each from one snapshot.

    SQLite's deferred transactions in WAL mode read one snapshot; PostgreSQL needs REPEATABLE
    READ for that (read-only transactions never fail to serialise at that level).
    """
    options: dict[str, Any] = {READ_ONLY_OPTION: True}
    if engine.dialect.name == "postgresql":
        options["isolation_level"] = "REPEATABLE READ"
    return engine.execution_options(**options)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module; SQLAlchemy emits BEGIN below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
