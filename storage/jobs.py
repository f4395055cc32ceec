"""The fine-tuning job lock: at most one job runs at a time, a crashed one is taken over.

A running job holds ``running_slot = true`` on its row; a unique constraint on that column lets
only one row hold it, on SQLite and PostgreSQL alike. A job that stopped sending heartbeats for
``stale_after`` is marked failed by the next :func:`acquire_job_lock`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import validate
from storage.errors import InvalidInputError, JobLockedError, NotFoundError, StorageError
from storage.models import FineTuningJob, ModelVersion, utcnow
from storage.records import JobRecord, job_record
from storage.store import Store

DEFAULT_STALE_AFTER = timedelta(hours=2)
JOB_LOCK_KEY = 0x4144_4153_0003
MAX_ERROR = 20_000


def acquire_job_lock(
    store: Store,
    *,
    owner: str,
    base_model_version_id: int | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> JobRecord:
    """Start a fine-tuning job, or raise JobLockedError if another one is running.

    ``owner`` says who runs it (host, process); call :func:`heartbeat_job` more often than
    ``stale_after`` and :func:`finish_job` at the end, whatever happens.
    """
    owner = validate.text(owner, "owner", max_length=200)
    if stale_after <= timedelta(0):
        raise InvalidInputError(f"stale_after must be positive, got {stale_after}")
    try:
        with store.write() as session:
            store.serialize(session, JOB_LOCK_KEY)
            if (
                base_model_version_id is not None
                and session.get(ModelVersion, base_model_version_id) is None
            ):
                raise NotFoundError(f"unknown model version {base_model_version_id}")
            now = utcnow()
            running = session.scalar(select(FineTuningJob).where(FineTuningJob.status == "running"))
            if running is not None:
                if now - running.heartbeat_at < stale_after:
                    raise JobLockedError(
                        f"fine-tuning job {running.id} ({running.owner}) has been running since "
                        f"{running.started_at:%Y-%m-%d %H:%M:%S} UTC; one job at a time"
                    )
                running.status = "failed"
                running.running_slot = None
                running.finished_at = now
                running.error = (
                    f"abandoned: no heartbeat since {running.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC; "
                    f"taken over by {owner}"
                )
                session.flush()
            row = FineTuningJob(
                status="running",
                running_slot=True,
                owner=owner,
                base_model_version_id=base_model_version_id,
                started_at=now,
                heartbeat_at=now,
            )
            session.add(row)
            session.flush()
            return job_record(row)
    except IntegrityError:
        raise JobLockedError("another fine-tuning job started at the same moment") from None


def _running_job(session: Session, job_id: int) -> FineTuningJob:
    row = session.get(FineTuningJob, job_id)
    if row is None:
        raise NotFoundError(f"unknown fine-tuning job {job_id}")
    if row.status != "running":
        raise StorageError(
            f"fine-tuning job {job_id} is {row.status}, not running; it lost its lock"
            + (f" ({row.error})" if row.error else "")
        )
    return row


def heartbeat_job(store: Store, job_id: int) -> None:
    """Tell others the job is alive (call more often than ``stale_after``)."""
    with store.write() as session:
        _running_job(session, job_id).heartbeat_at = utcnow()


def finish_job(
    store: Store,
    job_id: int,
    *,
    succeeded: bool,
    examples_count: int | None = None,
    metrics: Mapping[str, Any] | None = None,
    error: str | None = None,
    result_model_version_id: int | None = None,
) -> JobRecord:
    """End a running job (success or failure) and release the lock."""
    if examples_count is not None:
        examples_count = validate.non_negative_int(examples_count, "examples_count")
    metrics_json = validate.json_object(metrics, "metrics")
    if error is not None:
        error = str(error)[-MAX_ERROR:]
    if not succeeded and not error:
        raise InvalidInputError("a failed job needs its error text")
    with store.write() as session:
        row = _running_job(session, job_id)
        if (
            result_model_version_id is not None
            and session.get(ModelVersion, result_model_version_id) is None
        ):
            raise NotFoundError(f"unknown model version {result_model_version_id}")
        now = utcnow()
        row.status = "succeeded" if succeeded else "failed"
        row.running_slot = None
        row.examples_count = examples_count
        row.metrics = metrics_json
        row.error = error
        row.result_model_version_id = result_model_version_id
        row.heartbeat_at = now
        row.finished_at = now
        session.flush()
        return job_record(row)


def get_job(store: Store, job_id: int) -> JobRecord:
    """The job ``job_id``."""
    with store.read() as session:
        row = session.get(FineTuningJob, job_id)
        if row is None:
            raise NotFoundError(f"unknown fine-tuning job {job_id}")
        return job_record(row)


def list_jobs(store: Store) -> list[JobRecord]:
    """All jobs, newest first."""
    with store.read() as session:
        rows = session.scalars(select(FineTuningJob).order_by(FineTuningJob.id.desc()))
        return [job_record(row) for row in rows]
