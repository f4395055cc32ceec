"""Corrections: a clinician's final mask beside the original candidate it started from.

As in MONAI Label, both masks are kept and the Dice between them is stored: it measures how
much the clinician had to change, and the fine-tuning job trains on final masks only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from storage import masks, validate
from storage.annotators import annotator_by_name
from storage.errors import InvalidInputError, NotFoundError
from storage.models import Annotator, Candidate, Correction, Prediction, Slice
from storage.records import CorrectionRecord
from storage.store import Store

MAX_SECONDS = 7 * 24 * 3600.0
"""A correction that claims to have taken longer than a week is refused as a clock error."""


@dataclass(frozen=True, eq=False)
class CorrectionMasks:
    """The two masks of a correction."""

    original: NDArray[np.bool_]
    final: NDArray[np.bool_]


def correction_record(row: Correction, annotator: str) -> CorrectionRecord:
    """Record of a correction row."""
    return CorrectionRecord(
        id=row.id,
        prediction_id=row.prediction_id,
        candidate_id=row.candidate_id,
        annotator=annotator,
        dice=row.dice,
        changed_pixels=row.changed_pixels,
        final_area=row.final_area,
        clicks=row.clicks,
        seconds=row.seconds,
        started_at=row.started_at,
        created_at=row.created_at,
    )


def record_correction(
    store: Store,
    *,
    prediction_id: int,
    chosen_rank: int,
    final_mask: NDArray[Any],
    annotator: str,
    seconds: float,
    clicks: int = 0,
    started_at: datetime | None = None,
) -> CorrectionRecord:
    """Store the final mask an annotator made from candidate ``chosen_rank`` of a prediction.

    The original mask is the chosen candidate exactly as the model gave it; Dice and the
    number of changed pixels between original and final are computed here.
    """
    clicks = validate.non_negative_int(clicks, "clicks")
    seconds = validate.bounded(seconds, "seconds", 0.0, MAX_SECONDS)
    rank = validate.non_negative_int(chosen_rank, "chosen_rank")
    if started_at is not None and started_at.tzinfo is None:
        raise InvalidInputError("started_at must be timezone-aware")
    with store.read() as session:
        found = session.execute(
            select(Candidate.id, Candidate.mask_png, Slice.height, Slice.width)
            .join(Prediction, Candidate.prediction_id == Prediction.id)
            .join(Slice, Prediction.slice_id == Slice.id)
            .where(Prediction.id == prediction_id, Candidate.rank == rank)
        ).first()
        if found is None:
            if session.get(Prediction, prediction_id) is None:
                raise NotFoundError(f"unknown prediction {prediction_id}")
            raise InvalidInputError(f"prediction {prediction_id} has no candidate of rank {rank}")
        annotator_by_name(session, annotator)
    candidate_id, original_png, height, width = found
    original = masks.decode_png(original_png)
    final = masks.as_mask(final_mask, (height, width), what="final_mask")
    final_png = masks.encode_png(final)
    with store.write() as session:
        annotator_row = annotator_by_name(session, annotator)
        row = Correction(
            prediction_id=prediction_id,
            candidate_id=candidate_id,
            annotator_id=annotator_row.id,
            original_mask_png=original_png,
            final_mask_png=final_png,
            final_area=int(final.sum()),
            dice=masks.dice(original, final),
            changed_pixels=masks.changed_pixels(original, final),
            clicks=clicks,
            seconds=seconds,
            started_at=started_at,
        )
        session.add(row)
        session.flush()
        return correction_record(row, annotator_row.name)


def get_correction(store: Store, correction_id: int) -> CorrectionRecord:
    """The stored correction ``correction_id``."""
    with store.read() as session:
        found = session.execute(
            select(Correction, Annotator.name)
            .join(Annotator, Correction.annotator_id == Annotator.id)
            .where(Correction.id == correction_id)
        ).first()
        if found is None:
            raise NotFoundError(f"unknown correction {correction_id}")
        return correction_record(found[0], found[1])


def load_correction_masks(store: Store, correction_id: int) -> CorrectionMasks:
    """The original and final masks of a correction."""
    with store.read() as session:
        found = session.execute(
            select(Correction.original_mask_png, Correction.final_mask_png).where(
                Correction.id == correction_id
            )
        ).first()
    if found is None:
        raise NotFoundError(f"unknown correction {correction_id}")
    return CorrectionMasks(original=masks.decode_png(found[0]), final=masks.decode_png(found[1]))
