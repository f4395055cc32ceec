"""Predictions: the pipeline's proposal for one structure on one slice, with SAM's candidates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from storage import masks, validate
from storage.errors import InvalidInputError, NotFoundError
from storage.models import Candidate, ModelVersion, Prediction, Slice
from storage.records import CandidateRecord, PredictionRecord
from storage.slices import slice_by_hash
from storage.store import Store

MAX_CANDIDATES = 3
"""SAM's multimask output gives three candidates; single-mask mode gives one."""


def prediction_record(row: Prediction, slice_hash: str) -> PredictionRecord:
    """Record of a prediction row (its candidates must be loaded)."""
    return PredictionRecord(
        id=row.id,
        slice_hash=slice_hash,
        structure=row.structure,
        model_version_id=row.model_version_id,
        class_probability=row.class_probability,
        cam_summary=dict(row.cam_summary),
        prompt_box=None if row.prompt_box is None else list(row.prompt_box),
        prompt_point=None if row.prompt_point is None else list(row.prompt_point),
        cam_threshold=row.cam_threshold,
        timings=dict(row.timings),
        candidates=tuple(
            CandidateRecord(id=c.id, rank=c.rank, score=c.score, area=c.area)
            for c in row.candidates
        ),
        created_at=row.created_at,
    )


def prediction_by_id(session: Session, prediction_id: int) -> Prediction:
    """The prediction row (candidates loaded), or NotFoundError."""
    row = session.scalar(
        select(Prediction)
        .where(Prediction.id == prediction_id)
        .options(selectinload(Prediction.candidates))
    )
    if row is None:
        raise NotFoundError(f"unknown prediction {prediction_id}")
    return row


def _check_box(box: object, shape: tuple[int, int]) -> list[float] | None:
    values = validate.number_list(box, "prompt_box", (4,))
    if values is None:
        return None
    x0, y0, x1, y1 = values
    if x0 > x1 or y0 > y1:
        raise InvalidInputError(f"prompt_box must be [x0, y0, x1, y1] with x0<=x1, y0<=y1: {box}")
    height, width = shape
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise InvalidInputError(f"prompt_box {values} lies outside the {width}x{height} slice")
    return values


def _check_point(point: object, shape: tuple[int, int]) -> list[float] | None:
    values = validate.number_list(point, "prompt_point", (2, 3))
    if values is None:
        return None
    height, width = shape
    if not (0 <= values[0] < width and 0 <= values[1] < height):
        raise InvalidInputError(f"prompt_point {values} lies outside the {width}x{height} slice")
    if len(values) == 3 and values[2] not in (0.0, 1.0):
        raise InvalidInputError("prompt_point's third value is the label: 1 positive, 0 negative")
    return values


def record_prediction(
    store: Store,
    *,
    slice_hash: str,
    structure: str,
    candidates: Sequence[NDArray[Any]],
    scores: Sequence[float],
    model_version_id: int | None = None,
    class_probability: float | None = None,
    cam_summary: Mapping[str, Any] | None = None,
    prompt_box: Sequence[float] | None = None,
    prompt_point: Sequence[float] | None = None,
    cam_threshold: float | None = None,
    timings: Mapping[str, float] | None = None,
) -> PredictionRecord:
    """Store a prediction and its candidate masks (1 to 3, each at the slice's shape).

    ``scores`` are SAM's predicted IoUs, one per candidate (rank = position). ``prompt_box`` is
    ``[x0, y0, x1, y1]`` and ``prompt_point`` ``[x, y]`` or ``[x, y, label]`` in slice pixels;
    ``timings`` maps stage names to seconds.
    """
    structure = validate.text(structure, "structure", max_length=64)
    if not 1 <= len(candidates) <= MAX_CANDIDATES:
        raise InvalidInputError(
            f"a prediction has 1 to {MAX_CANDIDATES} candidates, got {len(candidates)}"
        )
    if len(scores) != len(candidates):
        raise InvalidInputError(f"{len(candidates)} candidates but {len(scores)} scores")
    score_values = [validate.finite(s, f"scores[{i}]") for i, s in enumerate(scores)]
    probability = (
        None
        if class_probability is None
        else validate.bounded(class_probability, "class_probability", 0.0, 1.0)
    )
    threshold = validate.optional_finite(cam_threshold, "cam_threshold")
    summary = validate.json_object(cam_summary, "cam_summary")
    stage_seconds = validate.seconds_map(timings, "timings")
    with store.read() as session:
        slice_row = slice_by_hash(session, slice_hash)
        slice_id, shape = slice_row.id, (slice_row.height, slice_row.width)
    # Masks are checked and encoded outside the write transaction (slices are immutable), so
    # the write lock is held only for the inserts.
    checked = [masks.as_mask(m, shape, what=f"candidates[{i}]") for i, m in enumerate(candidates)]
    encoded = [masks.encode_png(mask) for mask in checked]
    box = _check_box(prompt_box, shape)
    point = _check_point(prompt_point, shape)
    with store.write() as session:
        if model_version_id is not None and session.get(ModelVersion, model_version_id) is None:
            raise NotFoundError(f"unknown model version {model_version_id}")
        row = Prediction(
            slice_id=slice_id,
            structure=structure,
            model_version_id=model_version_id,
            class_probability=probability,
            cam_summary=summary,
            prompt_box=box,
            prompt_point=point,
            cam_threshold=threshold,
            timings=stage_seconds,
        )
        row.candidates = [
            Candidate(rank=rank, score=score, area=int(mask.sum()), mask_png=png)
            for rank, (mask, png, score) in enumerate(
                zip(checked, encoded, score_values, strict=True)
            )
        ]
        session.add(row)
        session.flush()
        return prediction_record(row, slice_hash)


def get_prediction(store: Store, prediction_id: int) -> PredictionRecord:
    """The stored prediction ``prediction_id``."""
    with store.read() as session:
        row = prediction_by_id(session, prediction_id)
        content_hash = session.scalar(select(Slice.content_hash).where(Slice.id == row.slice_id))
        return prediction_record(row, str(content_hash))


def load_candidate_mask(store: Store, candidate_id: int) -> NDArray[np.bool_]:
    """A candidate's mask as the model gave it."""
    with store.read() as session:
        data = session.scalar(select(Candidate.mask_png).where(Candidate.id == candidate_id))
    if data is None:
        raise NotFoundError(f"unknown candidate {candidate_id}")
    return masks.decode_png(data)
