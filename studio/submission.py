"""Submitting a correction and its rating to storage, exactly once.

One submission writes, in order: the slice (idempotent), the prediction with SAM's candidates,
the correction (original = chosen candidate, final mask, clicks, seconds, annotator) and the
SegEx rating of the chosen candidate. The :class:`SubmissionLedger` (one per server) remembers
every (case, structure) submitted: a double click, a second tab of the same session or a retry
after a failure never writes the same annotation twice, and a retry resumes after the last
step that succeeded.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np

from storage import (
    HumanObserver,
    Store,
    ensure_annotator,
    record_correction,
    record_prediction,
    record_rating,
)
from storage.corrections import MAX_SECONDS
from studio.errors import StudioError
from studio.rating import Rating
from studio.state import CaseState, Receipt, StructureWork
from studio.stored_slices import save_slice

LedgerKey = tuple[str, str]


@dataclass
class _Progress:
    """How far one submission got (ids of what is already written)."""

    busy: bool = True
    prediction_id: int | None = None
    candidate_ids: tuple[int, ...] = ()
    correction_id: int | None = None
    dice: float | None = None
    receipt: Receipt | None = None


@dataclass
class SubmissionLedger:
    """The server's memory of submissions, by (case token, structure); thread-safe, bounded."""

    capacity: int = 50_000
    _entries: OrderedDict[LedgerKey, _Progress] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, key: LedgerKey) -> _Progress:
        """Claim ``key`` for one submission; returns its progress so far.

        Raises:
            StudioError: the same annotation is being saved right now (a double click).
        """
        with self._lock:
            progress = self._entries.get(key)
            if progress is not None and progress.busy:
                raise StudioError("This annotation is being saved already; wait a moment.")
            if progress is None:
                progress = _Progress()
                self._entries[key] = progress
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            progress.busy = True
            return progress

    def end(self, progress: _Progress) -> None:
        """Release the claim (after success or failure)."""
        with self._lock:
            progress.busy = False

    def receipt(self, key: LedgerKey) -> Receipt | None:
        """The receipt of a completed submission of ``key``."""
        with self._lock:
            progress = self._entries.get(key)
            return None if progress is None else progress.receipt


def _click_count(work: StructureWork) -> int:
    corners = 2 if work.user_box is not None else 0
    return len(work.all_clicks) + corners


def _cam_summary(state: CaseState, work: StructureWork) -> dict[str, object]:
    summary: dict[str, object] = {
        "prompt_source": work.prompt_source,
        "found": work.found,
        "model": state.model_name,
        "model_version": state.model_version,
        "heatmap_max": round(float(np.max(work.heatmap)), 4),
        "heatmap_mean": round(float(np.mean(work.heatmap)), 4),
        "brush_edited": work.brushed is not None,
    }
    if work.prompts is not None:
        summary["cam_region_px"] = int(np.count_nonzero(work.prompts.region))
    return summary


def _store_prediction(
    store: Store, state: CaseState, work: StructureWork, annotator: str, progress: _Progress
) -> None:
    """Store the slice (leased to ``annotator``) and the model's prediction, noting the ids
    in ``progress``."""
    record = save_slice(store, state.slice, lease_to=annotator)
    box = work.box
    point = None
    if work.prompt_source == "cam" and work.prompts is not None:
        point = None if work.prompts.point is None else [float(v) for v in work.prompts.point]
    prediction = record_prediction(
        store,
        slice_hash=record.content_hash,
        structure=work.name,
        candidates=[c.mask for c in work.candidates],
        scores=[c.score for c in work.candidates],
        model_version_id=state.model_version_id,
        class_probability=min(1.0, max(0.0, work.probability)),
        cam_summary=_cam_summary(state, work),
        prompt_box=None if box is None else list(box),
        prompt_point=point,
        cam_threshold=state.prompt_threshold,
        timings={k: v / 1000.0 for k, v in state.timings_ms},
    )
    progress.prediction_id = prediction.id
    progress.candidate_ids = tuple(c.id for c in prediction.candidates)


def submit(
    store: Store,
    ledger: SubmissionLedger,
    state: CaseState,
    *,
    annotator: str,
    rating: Rating,
    final_mask: np.ndarray,
    now: float | None = None,
) -> tuple[CaseState, Receipt, bool]:
    """Store the active structure's correction and rating.

    Returns:
        The new state (with the receipt), the receipt, and whether it had been submitted
        before (then nothing was written).

    Raises:
        StudioError: no mask to submit, or the mask does not match the slice.
        StorageError: the database refused a write (what was written is resumed on retry).
    """
    work = state.work
    if work is None or work.original is None:
        raise StudioError(
            "There is no mask to submit yet: run the pipeline and choose a candidate."
        )
    if final_mask.shape != state.slice.shape or final_mask.dtype != np.bool_:
        raise StudioError("The final mask does not match the slice; reload the case.")
    key = (state.token, work.name)
    done = state.receipt(work.name) or ledger.receipt(key)
    if done is not None:
        return _with_receipt(state, done), done, True
    progress = ledger.begin(key)
    try:
        if progress.receipt is not None:  # finished by a concurrent request meanwhile
            return _with_receipt(state, progress.receipt), progress.receipt, True
        ensure_annotator(store, annotator)
        if progress.prediction_id is None:
            _store_prediction(store, state, work, annotator, progress)
        if progress.correction_id is None:
            finished = time.time() if now is None else now
            correction = record_correction(
                store,
                prediction_id=progress.prediction_id,
                chosen_rank=work.chosen,
                final_mask=final_mask,
                annotator=annotator,
                seconds=min(max(0.0, finished - state.loaded_at), MAX_SECONDS),
                clicks=_click_count(work),
                started_at=datetime.fromtimestamp(state.loaded_at, UTC),
            )
            progress.correction_id = correction.id
            progress.dice = correction.dice
        rated_at = time.time() if now is None else now
        rated = record_rating(
            store,
            observer=HumanObserver(annotator),
            seconds=min(max(0.0, rated_at - state.loaded_at), MAX_SECONDS),  # time on the case
            candidate_id=progress.candidate_ids[work.chosen],
            score=rating.score,
            verdict=rating.verdict,
            rubric=rating.rubric,
            comment=rating.comment,
        )
        receipt = Receipt(
            structure=work.name,
            prediction_id=progress.prediction_id,
            correction_id=progress.correction_id,
            rating_id=rated.id,
            dice=float(progress.dice if progress.dice is not None else 1.0),
            annotator=annotator,
        )
        progress.receipt = receipt
    finally:
        ledger.end(progress)
    return _with_receipt(state, receipt), receipt, False


def _with_receipt(state: CaseState, receipt: Receipt) -> CaseState:
    if state.receipt(receipt.structure) is not None:
        return state
    return replace(state, receipts=(*state.receipts, receipt))
