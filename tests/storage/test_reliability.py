"""Reliability: concurrent writers lose nothing; a killed writer leaves a sound database.

The concurrent test runs 8 threads and 4 processes writing corrections and ratings for
``ADASAM_STRESS_SECONDS`` (default 30) on each back-end, and reports the write throughput in
the terminal summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from storage import open_store
from storage.bench import prepare_workload, write_loop
from storage.check import check_store
from storage.store import Store

HERE = Path(__file__).resolve().parent
STRESS_SECONDS = float(os.environ.get("ADASAM_STRESS_SECONDS", "30"))
THREADS = 8
PROCESSES = 4


def _ids(store: Store, sql: str) -> set[int]:
    with store.engine.connect() as connection:
        return {row[0] for row in connection.execute(sa.text(sql))}


@pytest.mark.slow
def test_threads_and_processes_writing_together_lose_nothing(
    store: Store, database_url: str, tmp_path: Path, child_env: dict, throughput: list
) -> None:
    prediction_ids = prepare_workload(store)
    start = time.time()
    deadline = start + STRESS_SECONDS + 3  # the processes need a moment to import
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_writer_process.py"),
                database_url,
                str(store.data_dir),
                json.dumps(prediction_ids),
                str(deadline),
                str(100 + n),
            ],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    results: list[list[tuple[int, int]]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []

    def work(slot: int) -> None:
        try:
            until = time.monotonic() + (deadline - time.time())
            results[slot] = write_loop(
                store, prediction_ids, until=until, seed=slot, tag=f"thread-{slot}"
            )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    outputs = [child.communicate(timeout=STRESS_SECONDS + 120) for child in children]
    elapsed = time.time() - start
    assert not errors, errors
    for child, (_, stderr) in zip(children, outputs, strict=True):
        assert "database is locked" not in stderr
        assert child.returncode == 0, stderr[-3000:]
    pairs = [pair for result in results for pair in result]
    for stdout, _ in outputs:
        pairs.extend(tuple(pair) for pair in json.loads(stdout))
    assert all(len(result) > 0 for result in results), "a thread never got to write"

    corrections = _ids(store, "SELECT id FROM corrections")
    ratings = _ids(store, "SELECT id FROM ratings")
    assert corrections == {c for c, _ in pairs}  # nothing lost, nothing extra
    assert ratings == {r for _, r in pairs}
    linked = {(c, r) for r, c in _rating_links(store)}
    assert linked == set(pairs)
    rows = 2 * len(pairs)
    throughput.append(
        f"{store.dialect}: {rows} rows ({len(pairs)} corrections + {len(pairs)} ratings) "
        f"committed by {THREADS} threads + {PROCESSES} processes in {elapsed:.1f} s "
        f"= {rows / elapsed:.0f} rows/s, none lost"
    )


def _rating_links(store: Store) -> list[tuple[int, int]]:
    with store.engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(sa.text("SELECT id, correction_id FROM ratings"))
        ]


def _start_killed_writer(
    store: Store, url: str, env: dict, ids: list[int], commits: int, mode: str
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "_killed_writer.py"),
            url,
            str(store.data_dir),
            json.dumps(ids),
            str(commits),
            mode,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until_killed(
    child: subprocess.Popen, stop_line: str | None, kill_after: float | None
) -> set[tuple[int, int]]:
    committed: set[tuple[int, int]] = set()
    started = time.monotonic()
    assert child.stdout is not None
    for line in child.stdout:
        if line.startswith("committed"):
            _, c, r = line.split()
            committed.add((int(c), int(r)))
        if (stop_line and line.strip() == stop_line) or (
            kill_after is not None and time.monotonic() - started > kill_after
        ):
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, child.stderr.read()
    return committed


def _assert_sound(database_url: str, data_dir: Path, committed: set[tuple[int, int]]) -> None:
    with open_store(database_url, data_dir) as reopened:
        if reopened.dialect == "sqlite":
            with reopened.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA integrity_check").all() == [("ok",)]
        assert check_store(reopened) == []
        corrections = _ids(reopened, "SELECT id FROM corrections")
        ratings = _ids(reopened, "SELECT id FROM ratings")
        assert {c for c, _ in committed} <= corrections
        assert {r for _, r in committed} <= ratings
        assert _ids(reopened, "SELECT id FROM ratings WHERE comment = 'UNCOMMITTED'") == set()


def test_writer_killed_in_the_middle_of_a_transaction(
    store: Store, database_url: str, child_env: dict
) -> None:
    ids = prepare_workload(store)
    data_dir = store.data_dir
    store.close()
    child = _start_killed_writer(store, database_url, child_env, ids, 25, "hold")
    committed = _read_until_killed(child, "in-transaction", None)
    assert len(committed) == 25
    _assert_sound(database_url, data_dir, committed)


def test_writer_killed_at_random_moments(store: Store, database_url: str, child_env: dict) -> None:
    ids = prepare_workload(store)
    data_dir = store.data_dir
    store.close()
    everything: set[tuple[int, int]] = set()
    for kill_after in (1.3, 0.7, 2.1):
        child = _start_killed_writer(store, database_url, child_env, ids, 0, "run")
        everything |= _read_until_killed(child, None, kill_after)
        _assert_sound(database_url, data_dir, everything)
    assert everything
