"""SegEx ratings of candidates and final masks, by human or LLM observers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

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


Observer = HumanObserver | LlmObserver


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
) -> RatingRecord:
    """Store a SegEx rating of one candidate (``candidate_id``) or one final mask
    (``correction_id``): give exactly one of the two.

    ``verdict`` is one of accept, minor_edits, major_edits, reject; ``rubric`` maps rubric
    items to their answers.
    """
    if (candidate_id is None) == (correction_id is None):
        raise InvalidInputError("rate exactly one thing: pass candidate_id or correction_id")
    score = _check_score(score)
    if verdict not in VERDICTS:
        raise InvalidInputError(f"verdict must be one of {', '.join(VERDICTS)}; got {verdict!r}")
    rubric_items = validate.json_object(rubric, "rubric")
    comment = validate.text(comment, "comment", max_length=MAX_COMMENT, allow_empty=True)
    if isinstance(observer, HumanObserver):
        kind, llm_model, prompt_version = "human", None, None
    elif isinstance(observer, LlmObserver):
        kind = "llm"
        llm_model = validate.text(observer.model, "LLM model name", max_length=200)
        prompt_version = validate.text(observer.prompt_version, "prompt version", max_length=100)
    else:
        raise InvalidInputError("observer must be a HumanObserver or an LlmObserver")
    with store.write() as session:
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
            observer_kind=kind,
            annotator_id=None if annotator_row is None else annotator_row.id,
            llm_model=llm_model,
            llm_prompt_version=prompt_version,
            score=score,
            verdict=verdict,
            rubric=rubric_items,
            comment=comment,
        )
        session.add(row)
        session.flush()
        return rating_record(row, None if annotator_row is None else annotator_row.name)


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
