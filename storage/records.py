"""Frozen records returned by the repository functions (never live ORM objects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from storage import models


@dataclass(frozen=True)
class AnnotatorRecord:
    """A person who corrects or rates masks."""

    id: int
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class SliceRecord:
    """A stored de-identified slice (pixels and display image are in the blob store)."""

    id: int
    content_hash: str
    modality: str
    units: str
    shape: tuple[int, int]
    spacing: tuple[float, float] | None
    window_level: float | None
    window_width: float | None
    window_name: str | None
    source_format: str
    source_name: str
    metadata: dict[str, Any]
    pixels_blob: str
    display_blob: str
    created_at: datetime


@dataclass(frozen=True)
class CandidateRecord:
    """One of SAM's masks (load the mask itself with ``load_candidate_mask``)."""

    id: int
    rank: int
    score: float
    area: int


@dataclass(frozen=True)
class PredictionRecord:
    """What the pipeline proposed for one structure on one slice."""

    id: int
    slice_hash: str
    structure: str
    model_version_id: int | None
    class_probability: float | None
    cam_summary: dict[str, Any]
    prompt_box: list[float] | None
    prompt_point: list[float] | None
    cam_threshold: float | None
    timings: dict[str, float]
    candidates: tuple[CandidateRecord, ...]
    created_at: datetime


@dataclass(frozen=True)
class CorrectionRecord:
    """A final mask and how far it moved from the candidate it started from."""

    id: int
    prediction_id: int
    candidate_id: int
    annotator: str
    dice: float
    changed_pixels: int
    final_area: int
    clicks: int
    seconds: float
    started_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class RatingRecord:
    """A SegEx rating of a candidate or a final mask."""

    id: int
    candidate_id: int | None
    correction_id: int | None
    observer_kind: str
    annotator: str | None
    llm_model: str | None
    llm_prompt_version: str | None
    score: int
    verdict: str
    rubric: dict[str, Any]
    comment: str
    created_at: datetime
    seconds: float | None = None
    edits: int | None = None
    revises_id: int | None = None
    study_id: int | None = None
    llm_endpoint: str | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class LlmFailureRecord:
    """An LLM observer call that produced no valid rating."""

    id: int
    candidate_id: int | None
    correction_id: int | None
    llm_model: str
    llm_endpoint: str
    llm_prompt_version: str
    reason: str
    latency_ms: float | None
    created_at: datetime


@dataclass(frozen=True)
class SegexRow:
    """One rating that counts (the latest of its revisions), for the agreement statistics.

    ``item`` is ``"candidate:<id>"`` or ``"final:<id>"``; ``rater`` the annotator's name or
    ``llm:<model>``; ``dice`` the Dice between the rated mask and its final mask (``None`` when
    no correction started from it).
    """

    item: str
    rater: str
    kind: str
    score: int
    verdict: str
    structure: str
    dice: float | None


@dataclass(frozen=True)
class StudyRecord:
    """A rating study and how far it is."""

    id: int
    name: str
    ratings_per_case: int
    blinded: bool
    seed: int
    created_by: str
    raters: tuple[str, ...]
    cases: int
    ratings_done: int
    created_at: datetime


@dataclass(frozen=True)
class StudyCaseRecord:
    """A study case handed to a rater: the candidate mask to rate on its slice."""

    study_id: int
    candidate_id: int
    slice_hash: str
    structure: str
    position: int  # 1-based place in this rater's order
    total: int  # cases this rater may still be given, this one included


@dataclass(frozen=True)
class ModelVersionRecord:
    """A registered model bundle."""

    id: int
    name: str
    parent_id: int | None
    bundle_ref: str
    metrics: dict[str, Any]
    trained_through_correction_id: int | None
    is_active: bool
    created_at: datetime
    activated_at: datetime | None


@dataclass(frozen=True)
class JobRecord:
    """One run of the fine-tuning job."""

    id: int
    status: str
    owner: str
    base_model_version_id: int | None
    result_model_version_id: int | None
    examples_count: int | None
    metrics: dict[str, Any]
    error: str | None
    started_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, eq=False)
class FinalMask:
    """The newest final mask of one structure on one slice."""

    correction_id: int
    slice: SliceRecord
    structure: str
    mask: NDArray[np.bool_]
    annotator: str
    dice_original_to_final: float
    created_at: datetime


@dataclass(frozen=True, eq=False)
class TrainingExample:
    """A final mask with the slice's pixels, ready for the fine-tuning job."""

    correction_id: int
    slice_hash: str
    structure: str
    pixels: NDArray[np.float32]
    mask: NDArray[np.bool_]
    spacing: tuple[float, float] | None
    modality: str
    annotator: str


@dataclass(frozen=True)
class StorageStats:
    """Counts and agreement figures for the studio's dashboard."""

    slices: int
    predictions: int
    corrections: int
    ratings: int
    annotators: int
    model_versions: int
    active_model_version: str | None
    mean_dice_original_to_final: float | None
    mean_changed_pixels: float | None
    mean_seconds_per_correction: float | None
    corrections_per_annotator: dict[str, int]
    ratings_per_verdict: dict[str, int]
    ratings_per_verdict_by_observer: dict[str, dict[str, int]]
    mean_score_by_observer: dict[str, float | None]


def annotator_record(row: models.Annotator) -> AnnotatorRecord:
    """Record of an annotator row."""
    return AnnotatorRecord(id=row.id, name=row.name, role=row.role, created_at=row.created_at)


def slice_record(row: models.Slice) -> SliceRecord:
    """Record of a slice row."""
    spacing = None
    if row.spacing_row is not None and row.spacing_col is not None:
        spacing = (row.spacing_row, row.spacing_col)
    return SliceRecord(
        id=row.id,
        content_hash=row.content_hash,
        modality=row.modality,
        units=row.units,
        shape=(row.height, row.width),
        spacing=spacing,
        window_level=row.window_level,
        window_width=row.window_width,
        window_name=row.window_name,
        source_format=row.source_format,
        source_name=row.source_name,
        metadata=dict(row.metadata_json),
        pixels_blob=row.pixels_blob,
        display_blob=row.display_blob,
        created_at=row.created_at,
    )


def model_version_record(row: models.ModelVersion) -> ModelVersionRecord:
    """Record of a model version row."""
    return ModelVersionRecord(
        id=row.id,
        name=row.name,
        parent_id=row.parent_id,
        bundle_ref=row.bundle_ref,
        metrics=dict(row.metrics),
        trained_through_correction_id=row.trained_through_correction_id,
        is_active=row.is_active,
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


def job_record(row: models.FineTuningJob) -> JobRecord:
    """Record of a fine-tuning job row."""
    return JobRecord(
        id=row.id,
        status=row.status,
        owner=row.owner,
        base_model_version_id=row.base_model_version_id,
        result_model_version_id=row.result_model_version_id,
        examples_count=row.examples_count,
        metrics=dict(row.metrics),
        error=row.error,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
    )
