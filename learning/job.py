"""One fine-tuning job: lock, read corrections, train, gate, register (activate or keep).

The job holds the storage's one-job lock from start to end and sends heartbeats from a
background thread; a job that dies (even by SIGKILL) stops them, and the next job takes the
lock over once ``stale_after`` has passed. The new version is registered in one transaction at
the very end (bundle blobs first, then the row), so a job killed at any moment leaves no
half-registered version: at worst an unreferenced blob tree and a job row that the next job
marks failed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from adasam.finetune import (
    CorrectedCase,
    FinetuneConfig,
    concat,
    corrections_slices,
    data_hash,
    discard,
    finetune,
    replay_slices,
    training_size,
)
from adasam.gate import (
    GateConfig,
    Verdict,
    judge,
    reusable_scores,
    score_cases,
    scores_record,
    split_heldout,
)
from learning.cases import corrected_cases, heldout_count
from storage import (
    ModelVersionRecord,
    Store,
    acquire_job_lock,
    activate_model_version,
    active_model_version,
    bundle_path,
    finish_job,
    heartbeat_job,
    list_model_versions,
    register_model_version,
)

log = logging.getLogger("adasam.finetune")


@dataclass(frozen=True)
class JobOptions:
    """Everything one run needs besides the store."""

    base_bundle: Path
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    min_corrections: int = 1
    stale_after: timedelta = timedelta(hours=2)
    heartbeat_seconds: float = 30.0
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    progress: bool = True
    data_root: Path | None = None


@dataclass(frozen=True)
class JobOutcome:
    """What a run did: ``version`` is None when it trained nothing."""

    job_id: int
    message: str
    version: ModelVersionRecord | None = None
    verdict: Verdict | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


def ensure_parent(store: Store, base_bundle: Path) -> tuple[ModelVersionRecord, Path]:
    """The active version and its bundle folder; on the first run the base bundle is
    registered (and activated) as the root version, so lineage and rollback reach it."""
    from adasam.bundle import read_config

    active = active_model_version(store)
    if active is None:
        config = read_config(base_bundle)
        name = f"{config.name}-v{config.version}"
        existing = [v for v in list_model_versions(store) if v.name == name]
        if existing:
            active = activate_model_version(store, existing[0].id)
        else:
            active = register_model_version(
                store,
                name=name,
                bundle_dir=base_bundle,
                metrics={"root": True, "source": str(base_bundle)},
                activate=True,
            )
    return active, bundle_path(store, active.id)


class Heartbeat:
    """Sends the job's heartbeat every ``seconds`` until stopped; remembers a lost lock."""

    def __init__(self, store: Store, job_id: int, seconds: float) -> None:
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(store, job_id, seconds), daemon=True, name="heartbeat"
        )

    def _run(self, store: Store, job_id: int, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                heartbeat_job(store, job_id)
            except Exception as exc:  # the lock is gone: the job must not register
                self.error = exc
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _pseudo_labeler(predictor: Any) -> Any:
    def label(image: np.ndarray, structures: list[str]) -> dict[str, np.ndarray | None]:
        pred = predictor.predict(image, structures)
        return {
            s.name: (s.candidates[0].mask if s.found and s.candidates else None)
            for s in pred.structures
        }

    return label


def _training_data(
    opts: JobOptions, parent_dir: Path, cases: list[CorrectedCase], predictor: Any
) -> tuple[Any, dict[str, Any]]:
    from adasam.bundle import read_config

    config = read_config(parent_dir)
    size = training_size(config)
    cfg = opts.finetune
    corr = corrections_slices(
        cases,
        list(config.structures),
        size,
        pseudo_label=_pseudo_labeler(predictor),
        rating_weights=cfg.rating_weights,
    )
    n_replay = min(cfg.replay_max, round(cfg.replay_ratio * len({c.case for c in cases})))
    window = (config.training or {}).get("window", config.window)
    replay, info = replay_slices(
        parent_dir, config.structures, size, n_replay, cfg.seed, window, opts.data_root
    )
    return concat(corr, replay), info


def run_once(store: Store, opts: JobOptions) -> JobOutcome:
    """One job: train on the corrections since the active version if there are enough, gate
    the candidate against the active version, register it (activated or not).

    Raises:
        JobLockedError: another job holds the lock (its id, owner and start are in the message).
    """
    active = active_model_version(store)
    job = acquire_job_lock(
        store,
        owner=opts.owner,
        base_model_version_id=None if active is None else active.id,
        stale_after=opts.stale_after,
    )
    work = store.data_dir / "finetune" / f"job-{job.id}"
    try:
        with Heartbeat(store, job.id, opts.heartbeat_seconds) as beat:
            outcome = _run_locked(store, opts, job.id, work)
            if beat.error is not None:
                raise RuntimeError(f"the job lost its lock while running: {beat.error}")
        finish_job(
            store,
            job.id,
            succeeded=True,
            examples_count=int(outcome.metrics.get("train_corrections", 0)),
            metrics=outcome.metrics,
            result_model_version_id=None if outcome.version is None else outcome.version.id,
        )
        return outcome
    except BaseException as exc:
        finish_job(store, job.id, succeeded=False, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        discard(work)


def _predictor(bundle_dir: Path, cfg: FinetuneConfig) -> Any:
    """A predictor of ``bundle_dir`` that reads and writes the run's embedding store (frozen
    encoders), so each slice is encoded once for pseudo-labels, training and the gate."""
    from adasam.embedding_store import frozen_store
    from adasam.predictor import Predictor

    predictor = Predictor.from_dir(bundle_dir, cfg.device, cache_size=4)
    predictor.embedding_store = frozen_store(predictor.bundle, cfg.embedding_cache)
    return predictor


def recorded_scores(store: Store, version: Any) -> list[dict[str, Any]]:
    """Every gate score recorded for ``version`` (a model-version record): its own, from the
    gate that judged it, and those of later gates that judged a candidate against it."""
    own = (version.metrics or {}).get("gate_scores", {}).get("candidate", [])
    later = [
        r
        for v in list_model_versions(store)
        if v.parent_id == version.id
        for r in (v.metrics or {}).get("gate_scores", {}).get("active", [])
    ]
    return [*own, *later]


def _why_not_train(store: Store, opts: JobOptions, parent_name: str, trainable: int) -> str | None:
    """Why this job must train nothing (too few new trainable corrections, or too few held-out
    ones for the gate to judge a candidate: training then would only register a version the
    gate must refuse for want of evidence), or None."""
    if trainable < opts.min_corrections:
        return (
            f"{trainable} new trainable correction(s) since {parent_name}, "
            f"{opts.min_corrections} needed: nothing trained"
        )
    heldout = heldout_count(store, opts.gate)
    if heldout < opts.gate.min_cases:
        return (
            f"{heldout} held-out correction(s), {opts.gate.min_cases} needed to judge a "
            f"candidate: nothing trained ({trainable} trainable correction(s) wait)"
        )
    return None


def _run_locked(store: Store, opts: JobOptions, job_id: int, work: Path) -> JobOutcome:
    parent, parent_dir = ensure_parent(store, opts.base_bundle)
    new = corrected_cases(store, parent.trained_through_correction_id)
    train_cases, _ = split_heldout(new, opts.gate)
    skipped = _why_not_train(store, opts, parent.name, len(train_cases))
    if skipped is not None:
        return JobOutcome(job_id, skipped, metrics={"skipped": skipped, "train_corrections": 0})
    # the job's own embeddings go with its work folder unless a session shares one (simulate)
    cfg = replace(
        opts.finetune, embedding_cache=opts.finetune.embedding_cache or str(work / "embeddings")
    )
    opts = replace(opts, finetune=cfg)
    parent_predictor = _predictor(parent_dir, cfg)
    data, replay_info = _training_data(opts, parent_dir, train_cases, parent_predictor)
    version = f"ft{job_id}"
    log.info(
        "job %s: fine-tuning %s on %d corrections (%d slices with replay %d)",
        job_id, parent.name, len(train_cases), len(data), replay_info.get("used", 0),
    )  # fmt: skip
    result = finetune(
        parent_dir,
        work / "bundle",
        data,
        opts.finetune,
        version=version,
        replay_info=replay_info,
        progress=opts.progress,
    )
    if result.domain.get("kept_parent"):
        log.warning("job %s: out-of-domain model not refitted: %s", job_id, result.domain["reason"])
    _, heldout = split_heldout(corrected_cases(store), opts.gate)
    start = time.perf_counter()
    candidate_predictor = _predictor(result.bundle_dir, cfg)
    clicks = opts.gate.clicks
    known = reusable_scores(recorded_scores(store, parent), heldout, clicks)
    candidate_scores = score_cases(candidate_predictor, heldout, clicks)
    parent_scores = score_cases(parent_predictor, heldout, clicks, known)
    verdict = judge(candidate_scores, parent_scores, opts.gate)
    gate_seconds = round(time.perf_counter() - start, 1)
    metrics = {
        "gate": {**verdict.to_dict(), "seconds": gate_seconds, "reused_active_scores": len(known)},
        "gate_scores": {
            "candidate": scores_record(candidate_scores, heldout, clicks),
            "active": scores_record(parent_scores, heldout, clicks),
        },
        "lineage": {
            "parent_id": parent.id,
            "parent": parent.name,
            "correction_ids": sorted(c.correction_id for c in train_cases),
            "heldout_correction_ids": sorted(c.correction_id for c in heldout),
            "data_hash": data_hash(train_cases, replay_info.get("case_ids", [])),
            "replay": {k: v for k, v in replay_info.items() if k != "case_ids"},
        },
        "training": {
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "final_loss": round(result.final_loss, 4),
            "slices": len(data),
            "config": json.loads(json.dumps(asdict(opts.finetune), default=str)),
        },
        "domain": result.domain,
        "train_corrections": len(train_cases),
        "job_id": job_id,
    }
    registered = register_model_version(
        store,
        name=f"{parent.name.split('-ft')[0]}-ft{job_id}",
        bundle_dir=result.bundle_dir,
        parent_id=parent.id,
        metrics=metrics,
        trained_through_correction_id=max(c.correction_id for c in new),
        activate=verdict.activate,
    )
    state = "activated" if verdict.activate else "kept inactive"
    message = f"registered {registered.name} ({state}): {verdict.reason}"
    return JobOutcome(job_id, message, registered, verdict, metrics)
