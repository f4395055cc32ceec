"""SegEx ratings of candidates and final masks, by human or LLM observers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session, aliased

from storage import validate
from storage.annotators import annotator_by_name
from storage.errors import InvalidInputError, NotFoundError
from storage.models import SEGEX_MAX, SEGEX_MIN, VERDICTS, Annotator, Candidate, Correction, Rating
from storage.records import RatingRecord
from storage.store import Store

MAX_COMMENT = 10_000


@dataclass(frozen=True)
class HumanObserver:
    """A rating by a registered annotator."""

    annotator: str


@dataclass(frozen=True)
class LlmObserver:
    """A rating by a language model, identified by model name and prompt version."""

    model: str
    prompt_version: str
    endpoint: str = ""
    latency_ms: float | None = None


Observer = HumanObserver | LlmObserver


def latest_only() -> ColumnElement[bool]:
    """SQL condition on ``Rating``: the row is the latest version (nothing revises it)."""
    newer = aliased(Rating)
    return ~exists(select(newer.id).where(newer.revises_id == Rating.id))


def rating_record(row: Rating, annotator: str | None) -> RatingRecord:
    """Record of a rating row."""
    return RatingRecord(
        id=row.id,
        candidate_id=row.candidate_id,
        correction_id=row.correction_id,
        observer_kind=row.observer_kind,
        annotator=annotator,
        llm_model=row.llm_model,
        llm_prompt_version=row.llm_prompt_version,
        score=row.score,
        verdict=row.verdict,
        rubric=dict(row.rubric),
        comment=row.comment,
        created_at=row.created_at,
        seconds=row.seconds,
        edits=row.edits,
        revises_id=row.revises_id,
        study_id=row.study_id,
        llm_endpoint=row.llm_endpoint,
        latency_ms=row.latency_ms,
    )


def _check_score(score: object) -> int:
    if isinstance(score, bool) or not isinstance(score, int):
        raise InvalidInputError(
            f"a SegEx score is an integer from {SEGEX_MIN} to {SEGEX_MAX}, got {score!r}"
        )
    if not SEGEX_MIN <= score <= SEGEX_MAX:
        raise InvalidInputError(
            f"SegEx score {score} is out of range: the scale runs from {SEGEX_MIN} to {SEGEX_MAX}"
        )
    return score


@dataclass(frozen=True)
class RatingValues:
    """A validated rating: score, verdict, rubric, comment and the rater's effort."""

    score: int
    verdict: str
    rubric: dict[str, Any]
    comment: str
    seconds: float | None
    edits: int | None


def check_values(
    score: object,
    verdict: object,
    rubric: Mapping[str, Any] | None,
    comment: str,
    seconds: float | None,
    edits: int | None,
) -> RatingValues:
    """Validate a rating's values (see :func:`record_rating`)."""
    score = _check_score(score)
    if verdict not in VERDICTS:
        raise InvalidInputError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
    seconds = validate.optional_finite(seconds, "seconds spent")
    if seconds is not None and seconds < 0:
        raise InvalidInputError(f"seconds spent must be >= 0, got {seconds}")
    return RatingValues(
        score=score,
        verdict=str(verdict),
        rubric=validate.json_object(rubric, "rubric"),
        comment=validate.text(comment, "comment", max_length=MAX_COMMENT, allow_empty=True),
        seconds=seconds,
        edits=None if edits is None else validate.non_negative_int(edits, "edits"),
    )


def _observer_columns(observer: Observer) -> dict[str, Any]:
    if isinstance(observer, HumanObserver):
        return {"observer_kind": "human"}
    if isinstance(observer, LlmObserver):
        latency = validate.optional_finite(observer.latency_ms, "LLM latency")
        return {
            "observer_kind": "llm",
            "llm_model": validate.text(observer.model, "LLM model name", max_length=200),
            "llm_prompt_version": validate.text(
                observer.prompt_version, "prompt version", max_length=100
            ),
            "llm_endpoint": validate.text(
                observer.endpoint, "LLM endpoint", max_length=500, allow_empty=True
            ),
            "latency_ms": latency,
        }
    raise InvalidInputError("observer must be a HumanObserver or an LlmObserver")


def add_rating(
    session: Session,
    *,
    observer: Observer,
    values: RatingValues,
    candidate_id: int | None,
    correction_id: int | None,
    study_id: int | None = None,
    revises_id: int | None = None,
) -> RatingRecord:
    """Insert a rating row inside the caller's write transaction (targets are checked)."""
    if (candidate_id is None) == (correction_id is None):
        raise InvalidInputError("rate exactly one thing: pass candidate_id or correction_id")
    columns = _observer_columns(observer)
    annotator_row: Annotator | None = None
    if isinstance(observer, HumanObserver):
        annotator_row = annotator_by_name(session, observer.annotator)
    if candidate_id is not None and session.get(Candidate, candidate_id) is None:
        raise NotFoundError(f"unknown candidate {candidate_id}")
    if correction_id is not None and session.get(Correction, correction_id) is None:
        raise NotFoundError(f"unknown correction {correction_id}")
    row = Rating(
        candidate_id=candidate_id,
        correction_id=correction_id,
        annotator_id=None if annotator_row is None else annotator_row.id,
        score=values.score,
        verdict=values.verdict,
        rubric=values.rubric,
        comment=values.comment,
        seconds=values.seconds,
        edits=values.edits,
        study_id=study_id,
        revises_id=revises_id,
        **columns,
    )
    session.add(row)
    session.flush()
    return rating_record(row, None if annotator_row is None else annotator_row.name)


def record_rating(
    store: Store,
    *,
    observer: Observer,
    score: int,
    verdict: str,
    candidate_id: int | None = None,
    correction_id: int | None = None,
    rubric: Mapping[str, Any] | None = None,
    comment: str = "",
    seconds: float | None = None,
    edits: int | None = None,
) -> RatingRecord:
    """Store a SegEx rating of one candidate (``candidate_id``) or one final mask
    (``correction_id``): give exactly one of the two.

    ``verdict`` is one of accept, minor_edits, major_edits, reject; ``rubric`` maps rubric
    items to their answers; ``seconds`` is the time the rater spent and ``edits`` how many
    times they changed the form before storing it (both optional, >= 0). Ratings inside a
    study go through :func:`storage.studies.record_study_rating`.
    """
    if (candidate_id is None) == (correction_id is None):
        raise InvalidInputError("rate exactly one thing: pass candidate_id or correction_id")
    values = check_values(score, verdict, rubric, comment, seconds, edits)
    _observer_columns(observer)  # validate before opening a write transaction
    with store.write() as session:
        return add_rating(
            session,
            observer=observer,
            values=values,
            candidate_id=candidate_id,
            correction_id=correction_id,
        )


def revise_rating(
    store: Store,
    rating_id: int,
    *,
    annotator: str,
    score: int,
    verdict: str,
    rubric: Mapping[str, Any] | None = None,
    comment: str = "",
    seconds: float | None = None,
    edits: int | None = None,
) -> RatingRecord:
    """A rater's new version of their own rating ``rating_id``; the old one is kept as history
    and the new one counts. Only the latest version can be revised, only by its author."""
    values = check_values(score, verdict, rubric, comment, seconds, edits)
    with store.write() as session:
        old = session.get(Rating, rating_id)
        if old is None:
            raise NotFoundError(f"unknown rating {rating_id}")
        author = session.get(Annotator, old.annotator_id) if old.annotator_id else None
        if old.observer_kind != "human" or author is None or author.name != annotator:
            raise InvalidInputError(f"{annotator!r} can only revise their own ratings")
        newer = session.scalar(select(Rating.id).where(Rating.revises_id == rating_id))
        if newer is not None:
            raise InvalidInputError(
                f"rating {rating_id} was already revised (by rating {newer}); revise the latest"
            )
        return add_rating(
            session,
            observer=HumanObserver(annotator),
            values=values,
            candidate_id=old.candidate_id,
            correction_id=old.correction_id,
            study_id=old.study_id,
            revises_id=old.id,
        )


def rating_history(store: Store, rating_id: int) -> list[RatingRecord]:
    """Every version of a rating, oldest first (``rating_id`` may be any of them)."""
    with store.read() as session:
        row = session.get(Rating, rating_id)
        if row is None:
            raise NotFoundError(f"unknown rating {rating_id}")
        while row.revises_id is not None:
            row = session.get(Rating, row.revises_id)
            assert row is not None
        chain = [row]
        while True:
            newer = session.scalar(select(Rating).where(Rating.revises_id == chain[-1].id))
            if newer is None:
                break
            chain.append(newer)
        names = {a.id: a.name for a in session.scalars(select(Annotator))}
        return [rating_record(r, names.get(r.annotator_id or -1)) for r in chain]


def ratings_of(
    store: Store, *, candidate_id: int | None = None, correction_id: int | None = None
) -> list[RatingRecord]:
    """All ratings of one candidate or one final mask, oldest first."""
    if (candidate_id is None) == (correction_id is None):
        raise InvalidInputError("pass candidate_id or correction_id")
    condition = (
        Rating.candidate_id == candidate_id
        if candidate_id is not None
        else Rating.correction_id == correction_id
    )
    with store.read() as session:
        rows = session.execute(
            select(Rating, Annotator.name)
            .outerjoin(Annotator, Rating.annotator_id == Annotator.id)
            .where(condition)
            .order_by(Rating.id)
        ).all()
        return [rating_record(rating, name) for rating, name in rows]
