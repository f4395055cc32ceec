"""The database schema: SQLAlchemy 2 typed ORM models.

Only the repository modules of this package use these classes; other packages receive the
frozen records of :mod:`storage.records`. The schema is created and upgraded by the Alembic
migrations in ``storage/migrations`` (a test checks that they produce exactly these models).

Masks are stored in the database itself as 1-bit PNG (lossless, a few hundred bytes for a
typical organ mask), so a database snapshot holds every correction; slice pixels live in the
content-addressed blob store and are referenced by hash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

ROLES = ("annotator", "reviewer", "admin")
OBSERVER_KINDS = ("human", "llm")
VERDICTS = ("accept", "minor_edits", "major_edits", "reject")
JOB_STATUSES = ("running", "succeeded", "failed")
SEGEX_MIN, SEGEX_MAX = 1, 5
"""The SegEx scale: integer scores from 1 (unusable) to 5 (clinically usable as is)."""

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable migration names)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Annotator(Base):
    """A person who corrects or rates masks."""

    __tablename__ = "annotators"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Slice(Base):
    """A de-identified image slice, identified by the sha256 of its pixels."""

    __tablename__ = "slices"
    __table_args__ = (
        CheckConstraint("height > 0 AND width > 0", name="shape"),
        CheckConstraint("length(content_hash) = 64", name="hash_length"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    modality: Mapped[str] = mapped_column(String(32))
    units: Mapped[str] = mapped_column(String(32), default="")
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    spacing_row: Mapped[float | None] = mapped_column(Float)
    spacing_col: Mapped[float | None] = mapped_column(Float)
    window_level: Mapped[float | None] = mapped_column(Float)
    window_width: Mapped[float | None] = mapped_column(Float)
    window_name: Mapped[str | None] = mapped_column(String(64))
    source_format: Mapped[str] = mapped_column(String(32), default="")
    source_name: Mapped[str] = mapped_column(String(255), default="")
    metadata_json: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    pixels_blob: Mapped[str] = mapped_column(String(64))
    display_blob: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A fine-tuned model bundle; at most one is active."""

    __tablename__ = "model_versions"
    __table_args__ = (
        Index(
            "uq_model_versions_one_active",
            "is_active",
            unique=True,
            sqlite_where=text("is_active = 1"),
            postgresql_where=text("is_active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    bundle_ref: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trained_through_correction_id: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column()


class Prediction(Base):
    """What the pipeline proposed for one structure on one slice."""

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint(
            "class_probability IS NULL OR (class_probability >= 0 AND class_probability <= 1)",
            name="probability",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slice_id: Mapped[int] = mapped_column(ForeignKey("slices.id"), index=True)
    structure: Mapped[str] = mapped_column(String(64))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    class_probability: Mapped[float | None] = mapped_column(Float)
    cam_summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prompt_box: Mapped[list[Any] | None] = mapped_column()
    prompt_point: Mapped[list[Any] | None] = mapped_column()
    cam_threshold: Mapped[float | None] = mapped_column(Float)
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    candidates: Mapped[list[Candidate]] = relationship(
        order_by="Candidate.rank", back_populates="prediction"
    )


class Candidate(Base):
    """One of SAM's masks for a prediction, with SAM's predicted IoU."""

    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("prediction_id", "rank"),
        CheckConstraint("rank >= 0", name="rank"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"))
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    area: Mapped[int] = mapped_column(Integer)
    mask_png: Mapped[bytes] = mapped_column(LargeBinary)

    prediction: Mapped[Prediction] = relationship(back_populates="candidates")


class Correction(Base):
    """A clinician's final mask for a prediction, beside the original it started from."""

    __tablename__ = "corrections"
    __table_args__ = (
        CheckConstraint("dice >= 0 AND dice <= 1", name="dice"),
        CheckConstraint("changed_pixels >= 0 AND clicks >= 0 AND seconds >= 0", name="counts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(ForeignKey("predictions.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    original_mask_png: Mapped[bytes] = mapped_column(LargeBinary)
    final_mask_png: Mapped[bytes] = mapped_column(LargeBinary)
    final_area: Mapped[int] = mapped_column(Integer)
    dice: Mapped[float] = mapped_column(Float)
    changed_pixels: Mapped[int] = mapped_column(Integer)
    clicks: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Rating(Base):
    """A SegEx rating of a candidate or of a final mask, by a human or an LLM observer."""

    __tablename__ = "ratings"
    __table_args__ = (
        CheckConstraint(
            "(candidate_id IS NULL) <> (correction_id IS NULL)",
            name="exactly_one_target",
        ),
        CheckConstraint(_in("observer_kind", OBSERVER_KINDS), name="observer_kind"),
        CheckConstraint(
            "(observer_kind = 'human' AND annotator_id IS NOT NULL) OR "
            "(observer_kind = 'llm' AND llm_model IS NOT NULL AND llm_prompt_version IS NOT NULL)",
            name="observer_identity",
        ),
        CheckConstraint(f"score >= {SEGEX_MIN} AND score <= {SEGEX_MAX}", name="score"),
        CheckConstraint(_in("verdict", VERDICTS), name="verdict"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"), index=True)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id"), index=True)
    observer_kind: Mapped[str] = mapped_column(String(8))
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id"))
    llm_model: Mapped[str | None] = mapped_column(String(200))
    llm_prompt_version: Mapped[str | None] = mapped_column(String(100))
    score: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(16))
    rubric: Mapped[dict[str, Any]] = mapped_column(default=dict)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0002: effort, revisions, studies, LLM call details
    seconds: Mapped[float | None] = mapped_column(Float)
    edits: Mapped[int | None] = mapped_column(Integer)
    revises_id: Mapped[int | None] = mapped_column(ForeignKey("ratings.id"), unique=True)
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    llm_endpoint: Mapped[str | None] = mapped_column(String(500))
    latency_ms: Mapped[float | None] = mapped_column(Float)


class Study(Base):
    """A rating study: cases (candidates) that several annotators rate independently."""

    __tablename__ = "studies"
    __table_args__ = (CheckConstraint("ratings_per_case >= 1", name="ratings_per_case"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    ratings_per_case: Mapped[int] = mapped_column(Integer)
    blinded: Mapped[bool] = mapped_column(Boolean, default=True)
    seed: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudyRater(Base):
    """An annotator taking part in a study."""

    __tablename__ = "study_raters"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), primary_key=True)


class StudyCase(Base):
    """A mask (candidate) to be rated in a study."""

    __tablename__ = "study_cases"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), primary_key=True)


class StudyLease(Base):
    """A study case handed to a rater (reserves one of its rating slots until it expires)."""

    __tablename__ = "study_leases"

    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column()


class LlmFailure(Base):
    """An LLM observer call that gave no valid rating, with the reason (never a guessed score)."""

    __tablename__ = "llm_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("candidates.id"), index=True)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id"))
    llm_model: Mapped[str] = mapped_column(String(200))
    llm_endpoint: Mapped[str] = mapped_column(String(500))
    llm_prompt_version: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CaseLease(Base):
    """A slice handed to an annotator by the worklist, so others get different slices."""

    __tablename__ = "case_leases"

    slice_id: Mapped[int] = mapped_column(ForeignKey("slices.id"), primary_key=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    leased_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column()


class FineTuningJob(Base):
    """One run of the fine-tuning job; ``running_slot`` makes at most one run at a time."""

    __tablename__ = "fine_tuning_jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint(
            "(status = 'running' AND running_slot IS NOT NULL) OR "
            "(status <> 'running' AND running_slot IS NULL)",
            name="running_slot",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    running_slot: Mapped[bool | None] = mapped_column(Boolean, unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    base_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    result_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    examples_count: Mapped[int | None] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


VOLUME_SLICE_STATUSES = ("propagated", "accepted", "corrected")


class VolumeCase(Base):
    """A 3D study annotated for one structure: its shape, spacing and RAS affine (no UID, no
    name: the geometry alone, enough to write a label volume where the source lies)."""

    __tablename__ = "volume_cases"
    __table_args__ = (CheckConstraint("depth > 0 AND height > 0 AND width > 0", name="shape"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    structure: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(32))
    source_format: Mapped[str] = mapped_column(String(32))
    depth: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    spacing: Mapped[list[float]] = mapped_column(JSON)  # (slice, row, col) mm
    affine: Mapped[list[float]] = mapped_column(JSON)  # 16 floats, row-major, (k, r, c) → RAS
    slice_hashes: Mapped[list[str]] = mapped_column(JSON)  # content hash of each slice, by index
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("annotators.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VolumeSlice(Base):
    """One slice of a volume case: its mask and whether a human accepted or corrected it.

    Accepted and corrected slices point at an ordinary correction (so the training feed, which
    reads corrections only, takes them); propagated ones do not."""

    __tablename__ = "volume_slices"
    __table_args__ = (
        UniqueConstraint("volume_case_id", "slice_index"),
        CheckConstraint(_in("status", VOLUME_SLICE_STATUSES), name="status"),
        CheckConstraint(
            "(status = 'propagated') = (correction_id IS NULL)", name="human_has_correction"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    volume_case_id: Mapped[int] = mapped_column(ForeignKey("volume_cases.id"), index=True)
    slice_index: Mapped[int] = mapped_column(Integer)
    slice_id: Mapped[int] = mapped_column(ForeignKey("slices.id"))
    status: Mapped[str] = mapped_column(String(16))
    mask_png: Mapped[bytes] = mapped_column(LargeBinary)
    score: Mapped[float | None] = mapped_column(Float)
    correction_id: Mapped[int | None] = mapped_column(ForeignKey("corrections.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
