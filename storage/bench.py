"""Write-throughput workload: corrections and SegEx ratings recorded as fast as possible.

Used by ``python -m storage bench`` and by the reliability tests (threads and processes run
:func:`write_loop` against one database at the same time).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from storage.annotators import ensure_annotator
from storage.corrections import record_correction
from storage.predictions import record_prediction
from storage.ratings import HumanObserver, LlmObserver, record_rating
from storage.slices import pixels_hash, record_slice
from storage.store import Store

BENCH_ANNOTATOR = "bench-annotator"
BENCH_SHAPE = (128, 128)


@dataclass(frozen=True)
class BenchResult:
    """Rows committed by a workload and the rate it reached."""

    corrections: int
    ratings: int
    seconds: float

    @property
    def rows(self) -> int:
        """Corrections plus ratings."""
        return self.corrections + self.ratings

    @property
    def rows_per_second(self) -> float:
        """Committed rows per second of wall time."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def prepare_workload(store: Store, *, predictions: int = 4, seed: int = 0) -> list[int]:
    """Create the annotator, slices and predictions the workload corrects; their ids."""
    rng = np.random.default_rng(seed)
    ensure_annotator(store, BENCH_ANNOTATOR)
    ids = []
    for _ in range(predictions):
        pixels = rng.normal(size=BENCH_SHAPE).astype(np.float32)
        display = np.zeros((*BENCH_SHAPE, 3), dtype=np.uint8)
        record = record_slice(
            store, content_hash=pixels_hash(pixels), pixels=pixels, display=display, modality="MR"
        )
        yy, xx = np.mgrid[: BENCH_SHAPE[0], : BENCH_SHAPE[1]]
        cy, cx = rng.integers(40, 88, size=2)
        candidates = [((yy - cy) ** 2 + (xx - cx) ** 2) < r**2 for r in (20, 25, 30)]
        ids.append(
            record_prediction(
                store,
                slice_hash=record.content_hash,
                structure="VL",
                candidates=candidates,
                scores=[0.9, 0.8, 0.7],
            ).id
        )
    return ids


def write_loop(
    store: Store,
    prediction_ids: list[int],
    *,
    until: float,
    seed: int,
    tag: str,
    max_pairs: int | None = None,
) -> list[tuple[int, int]]:
    """Record (correction, rating) pairs until ``time.monotonic() >= until`` (or ``max_pairs``).

    Returns the ids of every committed pair. ``tag`` goes into each rating's comment so a
    test can tell writers apart.
    """
    rng = np.random.default_rng(seed)
    committed: list[tuple[int, int]] = []
    yy, xx = np.mgrid[: BENCH_SHAPE[0], : BENCH_SHAPE[1]]
    index = 0
    while time.monotonic() < until and (max_pairs is None or index < max_pairs):
        cy, cx, radius = rng.integers(40, 88), rng.integers(40, 88), rng.integers(10, 30)
        final = ((yy - cy) ** 2 + (xx - cx) ** 2) < radius**2
        correction = record_correction(
            store,
            prediction_id=prediction_ids[index % len(prediction_ids)],
            chosen_rank=index % 3,
            final_mask=final,
            annotator=BENCH_ANNOTATOR,
            seconds=float(rng.uniform(5, 60)),
            clicks=int(rng.integers(0, 6)),
        )
        observer = HumanObserver(BENCH_ANNOTATOR) if index % 2 else LlmObserver("bench-llm", "v1")
        rating = record_rating(
            store,
            observer=observer,
            correction_id=correction.id,
            score=int(rng.integers(1, 6)),
            verdict="minor_edits",
            comment=tag,
        )
        committed.append((correction.id, rating.id))
        index += 1
    return committed


def run_benchmark(store: Store, *, seconds: float, threads: int) -> BenchResult:
    """Run :func:`write_loop` in ``threads`` threads for ``seconds``; what they committed."""
    prediction_ids = prepare_workload(store)
    results: list[list[tuple[int, int]]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = time.monotonic()
    until = start + seconds

    def work(slot: int) -> None:
        try:
            results[slot] = write_loop(
                store, prediction_ids, until=until, seed=slot, tag=f"bench-{slot}"
            )
        except BaseException as error:  # reported below, not swallowed
            errors.append(error)

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - start
    if errors:
        raise errors[0]
    pairs = sum(len(r) for r in results)
    return BenchResult(corrections=pairs, ratings=pairs, seconds=elapsed)
