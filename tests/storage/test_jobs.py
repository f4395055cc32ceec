"""The fine-tuning job lock: one job at a time, crashed jobs taken over."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

import storage
from storage.errors import InvalidInputError, JobLockedError, StorageError
from storage.store import Store


def test_one_job_at_a_time(store: Store) -> None:
    job = storage.acquire_job_lock(store, owner="gpu-1")
    assert job.status == "running"
    with pytest.raises(JobLockedError, match="one job at a time"):
        storage.acquire_job_lock(store, owner="gpu-2")
    storage.heartbeat_job(store, job.id)
    done = storage.finish_job(
        store, job.id, succeeded=True, examples_count=12, metrics={"dice": 0.9}
    )
    assert (done.status, done.examples_count, done.finished_at is not None) == (
        "succeeded",
        12,
        True,
    )
    second = storage.acquire_job_lock(store, owner="gpu-2")
    failed = storage.finish_job(store, second.id, succeeded=False, error="CUDA out of memory")
    assert (failed.status, failed.error) == ("failed", "CUDA out of memory")
    assert [j.id for j in storage.list_jobs(store)] == [second.id, job.id]


def test_a_silent_job_is_taken_over(store: Store) -> None:
    crashed = storage.acquire_job_lock(store, owner="crashed")
    with store.engine.begin() as connection:  # its last heartbeat was long ago
        connection.execute(
            sa.text("UPDATE fine_tuning_jobs SET heartbeat_at = :t WHERE id = :id"),
            {"t": "2000-01-01 00:00:00", "id": crashed.id},
        )
    taker = storage.acquire_job_lock(store, owner="new", stale_after=timedelta(minutes=5))
    old = storage.get_job(store, crashed.id)
    assert old.status == "failed" and "abandoned" in old.error
    with pytest.raises(StorageError, match="lost its lock"):
        storage.heartbeat_job(store, crashed.id)
    with pytest.raises(StorageError, match="lost its lock"):
        storage.finish_job(store, crashed.id, succeeded=True)
    assert storage.get_job(store, taker.id).status == "running"


def test_finish_refusals(store: Store) -> None:
    job = storage.acquire_job_lock(store, owner="x")
    with pytest.raises(InvalidInputError, match="error text"):
        storage.finish_job(store, job.id, succeeded=False)
    assert storage.get_job(store, job.id).status == "running"


def test_racing_jobs_exactly_one_wins(store: Store) -> None:
    winners: list[int] = []
    losers: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def race(index: int) -> None:
        barrier.wait()
        try:
            winners.append(storage.acquire_job_lock(store, owner=f"w{index}").id)
        except JobLockedError as error:
            losers.append(str(error))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(winners) == 1 and len(losers) == 5
