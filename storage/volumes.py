"""Volume cases: one structure annotated over a 3D study, slice by slice.

A volume case keeps the study's geometry (shape, spacing, RAS affine; no UID, no name) and, for
each slice that has a mask, the mask and its status:

* ``"propagated"``: carried from a neighbouring slice by the model, not checked by a human;
* ``"accepted"``: a human kept the mask as it was;
* ``"corrected"``: a human edited it.

Accepted and corrected slices are also stored as an ordinary prediction (the model's mask as the
candidate) and correction (the final mask), so the training feed
(:func:`storage.training.training_examples_since`), which reads corrections only, takes exactly
the human slices and never a propagated one. Each slice's pixels are an ordinary stored slice
(:func:`storage.record_slice`), referenced by content hash.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from storage import masks, validate
from storage.annotators import annotator_by_name
from storage.corrections import record_correction
from storage.errors import InvalidInputError, NotFoundError
from storage.models import VOLUME_SLICE_STATUSES, Annotator, Slice, VolumeCase, VolumeSlice, utcnow
from storage.predictions import record_prediction
from storage.slices import slice_by_hash
from storage.store import Store

HUMAN_STATUSES = ("accepted", "corrected")


@dataclass(frozen=True)
class VolumeCaseRecord:
    """A stored volume case. ``affine``: float64 (4, 4), index (k, row, col, 1) → RAS mm."""

    id: int
    structure: str
    modality: str
    source_format: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    affine: NDArray[np.float64]
    slice_hashes: tuple[str, ...]
    annotator: str | None
    created_at: datetime


@dataclass(frozen=True, eq=False)
class VolumeSliceRecord:
    """One slice of a volume case: bool (H, W) ``mask``, status, score (propagated only)."""

    slice_index: int
    status: str
    mask: NDArray[np.bool_]
    score: float | None
    slice_hash: str
    correction_id: int | None
    updated_at: datetime


def _case_record(row: VolumeCase, annotator: str | None) -> VolumeCaseRecord:
    return VolumeCaseRecord(
        id=row.id,
        structure=row.structure,
        modality=row.modality,
        source_format=row.source_format,
        shape=(row.depth, row.height, row.width),
        spacing=(float(row.spacing[0]), float(row.spacing[1]), float(row.spacing[2])),
        affine=np.asarray(row.affine, dtype=np.float64).reshape(4, 4),
        slice_hashes=tuple(row.slice_hashes),
        annotator=annotator,
        created_at=row.created_at,
    )


def _positive_spacing(spacing: Sequence[float]) -> list[float]:
    values = [validate.finite(v, "spacing") for v in spacing]
    if len(values) != 3 or min(values) <= 0:
        raise InvalidInputError(f"spacing must be three positive mm values, got {list(spacing)}")
    return values


def record_volume_case(
    store: Store,
    *,
    structure: str,
    modality: str,
    source_format: str,
    shape: Sequence[int],
    spacing: Sequence[float],
    affine: NDArray[Any],
    slice_hashes: Sequence[str],
    annotator: str | None = None,
) -> VolumeCaseRecord:
    """Store a new volume case (``shape`` (D, H, W), ``spacing`` (slice, row, col) mm,
    ``affine`` (4, 4) index (k, row, col, 1) → RAS mm, ``slice_hashes`` the stored slice
    (:func:`storage.record_slice`) of each index, ``D`` of them, each (H, W))."""
    dims = [validate.non_negative_int(s, "shape") for s in shape]
    if len(dims) != 3 or min(dims) < 1:
        raise InvalidInputError(f"shape must be (D, H, W) with every size ≥ 1, got {list(shape)}")
    matrix = np.asarray(affine, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise InvalidInputError("affine must be a finite (4, 4) matrix")
    hashes = [str(h) for h in slice_hashes]
    if len(hashes) != dims[0]:
        raise InvalidInputError(f"{len(hashes)} slice hashes for a volume of {dims[0]} slices")
    with store.write() as session:
        annotator_row = None if annotator is None else annotator_by_name(session, annotator)
        for k, content_hash in enumerate(hashes):
            slice_row = slice_by_hash(session, content_hash)
            if (slice_row.height, slice_row.width) != (dims[1], dims[2]):
                raise InvalidInputError(
                    f"slice {k} is {slice_row.height}×{slice_row.width}, the volume's slices "
                    f"are {dims[1]}×{dims[2]}"
                )
        row = VolumeCase(
            structure=validate.text(structure, "structure", max_length=64),
            modality=validate.text(modality, "modality", max_length=32),
            source_format=validate.text(source_format, "source_format", max_length=32),
            depth=dims[0],
            height=dims[1],
            width=dims[2],
            spacing=_positive_spacing(spacing),
            affine=[float(v) for v in matrix.ravel()],
            slice_hashes=hashes,
            annotator_id=None if annotator_row is None else annotator_row.id,
        )
        session.add(row)
        session.flush()
        return _case_record(row, annotator)


def get_volume_case(store: Store, volume_case_id: int) -> VolumeCaseRecord:
    with store.read() as session:
        row = session.get(VolumeCase, volume_case_id)
        if row is None:
            raise NotFoundError(f"unknown volume case {volume_case_id}")
        name = None
        if row.annotator_id is not None:
            name = session.get(Annotator, row.annotator_id).name  # type: ignore[union-attr]
        return _case_record(row, name)


def _human_correction(
    store: Store,
    case: VolumeCaseRecord,
    slice_hash: str,
    mask: NDArray[np.bool_],
    original: NDArray[np.bool_],
    score: float | None,
    annotator: str,
    seconds: float,
) -> int:
    prediction = record_prediction(
        store,
        slice_hash=slice_hash,
        structure=case.structure,
        candidates=[original],
        scores=[0.0 if score is None else score],
    )
    correction = record_correction(
        store,
        prediction_id=prediction.id,
        chosen_rank=0,
        final_mask=mask,
        annotator=annotator,
        seconds=seconds,
    )
    return correction.id


def record_volume_slice(
    store: Store,
    *,
    volume_case_id: int,
    slice_index: int,
    status: str,
    mask: NDArray[Any],
    score: float | None = None,
    annotator: str | None = None,
    original: NDArray[Any] | None = None,
    seconds: float = 0.0,
) -> VolumeSliceRecord:
    """Store (or replace) one slice's mask and status.

    Args:
        status: ``"propagated"``, ``"accepted"`` or ``"corrected"``.
        mask: bool (H, W) at the case's slice shape.
        score: the model's predicted IoU of a propagated mask.
        annotator: who accepted or corrected it (required for those two).
        original: the model's mask a human started from (accepted/corrected); default
            ``mask`` itself (a mask drawn from nothing).
        seconds: time the human spent on it.

    Raises:
        InvalidInputError: bad status, index or mask, a human status without an annotator, or
            a propagated mask over a human slice (never overwritten).
    """
    if status not in VOLUME_SLICE_STATUSES:
        raise InvalidInputError(f"status must be one of {VOLUME_SLICE_STATUSES}, got {status!r}")
    case = get_volume_case(store, volume_case_id)
    index = validate.non_negative_int(slice_index, "slice_index")
    if index >= case.shape[0]:
        raise InvalidInputError(f"slice_index {index} is outside 0..{case.shape[0] - 1}")
    final = masks.as_mask(mask, case.shape[1:], what="mask")
    slice_hash = case.slice_hashes[index]
    if score is not None and not math.isfinite(score):
        raise InvalidInputError(f"score must be finite, got {score}")
    correction_id = None
    if status in HUMAN_STATUSES:
        if annotator is None:
            raise InvalidInputError(f"an {status} slice needs the annotator who checked it")
        start = final if original is None else masks.as_mask(original, case.shape[1:])
        correction_id = _human_correction(
            store, case, slice_hash, final, start, score, annotator, seconds
        )
    with store.write() as session:
        slice_row = slice_by_hash(session, slice_hash)
        row = session.scalar(
            select(VolumeSlice).where(
                VolumeSlice.volume_case_id == volume_case_id, VolumeSlice.slice_index == index
            )
        )
        if row is not None and row.status in HUMAN_STATUSES and status == "propagated":
            raise InvalidInputError(
                f"slice {index} was {row.status} by a human; a propagated mask does not replace it"
            )
        if row is None:
            row = VolumeSlice(volume_case_id=volume_case_id, slice_index=index)
            session.add(row)
        row.slice_id = slice_row.id
        row.status = status
        row.mask_png = masks.encode_png(final)
        row.score = None if score is None else float(score)
        row.correction_id = correction_id
        row.updated_at = utcnow()
        session.flush()
        return VolumeSliceRecord(
            index, status, final, row.score, slice_hash, correction_id, row.updated_at
        )


def volume_slices(store: Store, volume_case_id: int) -> list[VolumeSliceRecord]:
    """Every stored slice of a case, by index."""
    get_volume_case(store, volume_case_id)
    with store.read() as session:
        rows = session.execute(
            select(VolumeSlice, Slice.content_hash)
            .join(Slice, VolumeSlice.slice_id == Slice.id)
            .where(VolumeSlice.volume_case_id == volume_case_id)
            .order_by(VolumeSlice.slice_index)
        ).all()
        return [
            VolumeSliceRecord(
                row.slice_index,
                row.status,
                masks.decode_png(row.mask_png),
                row.score,
                content_hash,
                row.correction_id,
                row.updated_at,
            )
            for row, content_hash in rows
        ]


def list_volume_cases(store: Store) -> list[VolumeCaseRecord]:
    with store.read() as session:
        rows = session.execute(
            select(VolumeCase, Annotator.name)
            .outerjoin(Annotator, VolumeCase.annotator_id == Annotator.id)
            .order_by(VolumeCase.id)
        ).all()
        return [_case_record(row, name) for row, name in rows]


def label_volume(store: Store, volume_case_id: int) -> tuple[NDArray[np.bool_], list[str]]:
    """bool (D, H, W) mask of a case (slices without a stored mask are empty) and each slice's
    status (``"none"`` where nothing is stored)."""
    case = get_volume_case(store, volume_case_id)
    out = np.zeros(case.shape, dtype=bool)
    status = ["none"] * case.shape[0]
    for record in volume_slices(store, volume_case_id):
        out[record.slice_index] = record.mask
        status[record.slice_index] = record.status
    return out, status
