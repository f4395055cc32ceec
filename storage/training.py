"""Final masks: the newest correction per (slice, structure), for training and exports."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select

from storage import masks
from storage.errors import NotFoundError
from storage.models import Annotator, Correction, ModelVersion, Prediction, Rating, Slice
from storage.records import FinalMask, TrainingExample, slice_record
from storage.slices import load_pixels
from storage.store import Store


def final_masks(
    store: Store,
    *,
    structures: Collection[str] | None = None,
    after_correction_id: int | None = None,
) -> list[FinalMask]:
    """The newest final mask of each (slice, structure), ordered by slice then structure.

    With ``after_correction_id``, only corrections newer than it count (the newest of those per
    slice and structure). Only final masks are returned: originals are never training labels.
    """
    newest = select(func.max(Correction.id).label("id")).join(
        Prediction, Correction.prediction_id == Prediction.id
    )
    if after_correction_id is not None:
        newest = newest.where(Correction.id > after_correction_id)
    if structures is not None:
        newest = newest.where(Prediction.structure.in_(list(structures)))
    newest_ids = newest.group_by(Prediction.slice_id, Prediction.structure).subquery()
    with store.read() as session:
        rows = session.execute(
            select(Correction, Prediction.structure, Slice, Annotator.name)
            .join(newest_ids, Correction.id == newest_ids.c.id)
            .join(Prediction, Correction.prediction_id == Prediction.id)
            .join(Slice, Prediction.slice_id == Slice.id)
            .join(Annotator, Correction.annotator_id == Annotator.id)
            .order_by(Slice.id, Prediction.structure)
        ).all()
        return [
            FinalMask(
                correction_id=correction.id,
                slice=slice_record(slice_row),
                structure=structure,
                mask=masks.decode_png(correction.final_mask_png),
                annotator=annotator,
                dice_original_to_final=correction.dice,
                created_at=correction.created_at,
            )
            for correction, structure, slice_row, annotator in rows
        ]


def training_examples_since(store: Store, model_version_id: int | None) -> list[TrainingExample]:
    """Final masks (with pixels) newer than what ``model_version_id`` was trained on.

    ``None``, or a version registered without ``trained_through_correction_id``, gives every
    final mask. Register the next version with ``trained_through_correction_id`` = the largest
    ``correction_id`` among the examples it was trained on.
    """
    after: int | None = None
    if model_version_id is not None:
        with store.read() as session:
            version = session.get(ModelVersion, model_version_id)
            if version is None:
                raise NotFoundError(f"unknown model version {model_version_id}")
            after = version.trained_through_correction_id
    examples = []
    for final in final_masks(store, after_correction_id=after):
        examples.append(
            TrainingExample(
                correction_id=final.correction_id,
                slice_hash=final.slice.content_hash,
                structure=final.structure,
                pixels=load_pixels(store, final.slice),
                mask=final.mask,
                spacing=final.slice.spacing,
                modality=final.slice.modality,
                annotator=final.annotator,
            )
        )
    return examples


def correction_verdicts(store: Store, correction_ids: Collection[int]) -> dict[int, str]:
    """The SegEx verdict of each correction: its newest human rating of the final mask, else of
    the candidate it started from (the studio rates the candidate). Unrated ones are absent."""
    ids = list(correction_ids)
    if not ids:
        return {}
    with store.read() as session:
        rows = session.execute(
            select(Correction.id, Rating.verdict, Rating.correction_id)
            .join(
                Rating,
                (Rating.correction_id == Correction.id)
                | (Rating.candidate_id == Correction.candidate_id),
            )
            .where(Correction.id.in_(ids), Rating.observer_kind == "human")
            .order_by(Rating.id)
        ).all()
    on_candidate: dict[int, str] = {}
    on_final: dict[int, str] = {}
    for correction_id, verdict, rated_correction in rows:
        (on_final if rated_correction is not None else on_candidate)[correction_id] = verdict
    return {**on_candidate, **on_final}
