"""Engine set-up: SQLite pragmas, write locking, URL handling."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage.engine import SQLITE_BUSY_TIMEOUT_MS, make_engine, sqlite_path
from storage.store import Store


def test_sqlite_connections_get_wal_foreign_keys_busy_timeout_and_full_sync(
    sqlite_store: Store,
) -> None:
    with sqlite_store.engine.connect() as connection:
        pragma = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }
    assert pragma == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "busy_timeout": SQLITE_BUSY_TIMEOUT_MS,
        "synchronous": 2,  # FULL
    }


def test_foreign_keys_are_enforced(sqlite_store: Store) -> None:
    with (
        pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"),
        sqlite_store.engine.begin() as connection,
    ):
        connection.exec_driver_sql(
            "INSERT INTO predictions (slice_id, structure, cam_summary, timings, created_at)"
            " VALUES (999, 'VL', '{}', '{}', '2024-01-01 00:00:00')"
        )


def test_write_transactions_take_the_lock_up_front(sqlite_store: Store) -> None:
    """BEGIN IMMEDIATE: a second writer waits for the first instead of failing later."""
    order: list[str] = []
    first_has_lock = threading.Event()

    def first() -> None:
        with sqlite_store.write() as session:
            session.execute(sa.text("SELECT 1"))
            first_has_lock.set()
            time.sleep(0.3)
            order.append("first commits")

    thread = threading.Thread(target=first)
    thread.start()
    first_has_lock.wait(5)
    with sqlite_store.write() as session:
        session.execute(sa.text("SELECT 1"))
        order.append("second begins")
    thread.join()
    assert order == ["first commits", "second begins"]


def test_reads_do_not_wait_for_a_writer(sqlite_store: Store) -> None:
    writer_in = threading.Event()
    release = threading.Event()

    def writer() -> None:
        with sqlite_store.write() as session:
            session.execute(sa.text("SELECT 1"))
            writer_in.set()
            release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    writer_in.wait(5)
    started = time.monotonic()
    with sqlite_store.read() as session:
        assert session.execute(sa.text("SELECT count(*) FROM slices")).scalar() == 0
    waited = time.monotonic() - started
    release.set()
    thread.join()
    assert waited < 2.0, f"a read waited {waited:.1f} s for a writer"


def test_in_memory_sqlite_is_refused_and_paths_are_parsed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="in-memory"):
        make_engine("sqlite://")
    assert sqlite_path(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    assert sqlite_path("postgresql+psycopg://u@h/db") is None


def test_parent_folder_of_a_sqlite_file_is_created(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/deep/er/adasam.sqlite3")
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1")
    engine.dispose()
    assert (tmp_path / "deep" / "er" / "adasam.sqlite3").exists()
