"""SegEx read-outs for the agreement statistics, and the LLM observer's failed calls."""

from __future__ import annotations

from sqlalchemy import select

from storage import validate
from storage.errors import InvalidInputError, NotFoundError
from storage.models import (
    Annotator,
    Candidate,
    Correction,
    LlmFailure,
    Prediction,
    Rating,
    Slice,
    StudyCase,
)
from storage.ratings import latest_only
from storage.records import LlmFailureRecord, SegexRow, SliceRecord, slice_record
from storage.store import Store
from storage.studies import study_row


def _rater_name(rating: Rating, annotator: str | None) -> str:
    if rating.observer_kind == "human":
        return annotator or ""
    return f"llm:{rating.llm_model}"


def segex_rows(
    store: Store, *, study: int | str | None = None, structure: str | None = None
) -> list[SegexRow]:
    """The ratings that count (latest versions), oldest first, with the rated mask's structure
    and its Dice(original, final).

    ``study`` given: that study's human ratings plus every LLM rating of its cases; otherwise
    every rating. ``structure`` keeps one structure.
    """
    with store.read() as session:
        query = (
            select(Rating, Annotator.name)
            .outerjoin(Annotator, Rating.annotator_id == Annotator.id)
            .where(latest_only())
            .order_by(Rating.id)
        )
        if study is not None:
            row = study_row(session, study)
            cases = select(StudyCase.candidate_id).where(StudyCase.study_id == row.id)
            query = query.where(
                (Rating.study_id == row.id)
                | ((Rating.observer_kind == "llm") & Rating.candidate_id.in_(cases))
            )
        ratings = session.execute(query).all()
        structure_of_candidate = dict(
            session.execute(
                select(Candidate.id, Prediction.structure).join(
                    Prediction, Candidate.prediction_id == Prediction.id
                )
            ).all()
        )
        corrections = session.execute(
            select(Correction.id, Correction.candidate_id, Correction.dice, Prediction.structure)
            .join(Prediction, Correction.prediction_id == Prediction.id)
            .order_by(Correction.id)
        ).all()
    dice_of_candidate = {c: d for _, c, d, _ in corrections}  # the newest correction wins
    final = {i: (d, s) for i, _, d, s in corrections}
    rows = []
    for rating, annotator in ratings:
        if rating.candidate_id is not None:
            item = f"candidate:{rating.candidate_id}"
            struct = structure_of_candidate[rating.candidate_id]
            dice = dice_of_candidate.get(rating.candidate_id)
        else:
            item = f"final:{rating.correction_id}"
            dice, struct = final[rating.correction_id]
        if structure is not None and struct != structure:
            continue
        rows.append(
            SegexRow(
                item=item,
                rater=_rater_name(rating, annotator),
                kind=rating.observer_kind,
                score=rating.score,
                verdict=rating.verdict,
                structure=struct,
                dice=None if dice is None else float(dice),
            )
        )
    return rows


def record_llm_failure(
    store: Store,
    *,
    model: str,
    endpoint: str,
    prompt_version: str,
    reason: str,
    candidate_id: int | None = None,
    correction_id: int | None = None,
    latency_ms: float | None = None,
) -> LlmFailureRecord:
    """Store an LLM observer call that gave no valid rating, with why."""
    if (candidate_id is None) == (correction_id is None):
        raise InvalidInputError("pass candidate_id or correction_id")
    values = {
        "llm_model": validate.text(model, "LLM model name", max_length=200),
        "llm_endpoint": validate.text(endpoint, "LLM endpoint", max_length=500, allow_empty=True),
        "llm_prompt_version": validate.text(prompt_version, "prompt version", max_length=100),
        "reason": validate.text(reason, "failure reason", max_length=10_000),
        "latency_ms": validate.optional_finite(latency_ms, "LLM latency"),
    }
    with store.write() as session:
        if candidate_id is not None and session.get(Candidate, candidate_id) is None:
            raise NotFoundError(f"unknown candidate {candidate_id}")
        if correction_id is not None and session.get(Correction, correction_id) is None:
            raise NotFoundError(f"unknown correction {correction_id}")
        row = LlmFailure(candidate_id=candidate_id, correction_id=correction_id, **values)
        session.add(row)
        session.flush()
        return _failure_record(row)


def _failure_record(row: LlmFailure) -> LlmFailureRecord:
    return LlmFailureRecord(
        id=row.id,
        candidate_id=row.candidate_id,
        correction_id=row.correction_id,
        llm_model=row.llm_model,
        llm_endpoint=row.llm_endpoint,
        llm_prompt_version=row.llm_prompt_version,
        reason=row.reason,
        latency_ms=row.latency_ms,
        created_at=row.created_at,
    )


def llm_failures(store: Store, *, candidate_id: int | None = None) -> list[LlmFailureRecord]:
    """The LLM observer's failed calls (of one candidate when given), oldest first."""
    with store.read() as session:
        query = select(LlmFailure).order_by(LlmFailure.id)
        if candidate_id is not None:
            query = query.where(LlmFailure.candidate_id == candidate_id)
        return [_failure_record(row) for row in session.scalars(query).all()]


def candidate_context(store: Store, candidate_id: int) -> tuple[SliceRecord, str]:
    """The slice a candidate lies on and the structure it segments."""
    with store.read() as session:
        found = session.execute(
            select(Slice, Prediction.structure)
            .join(Prediction, Prediction.slice_id == Slice.id)
            .join(Candidate, Candidate.prediction_id == Prediction.id)
            .where(Candidate.id == candidate_id)
        ).first()
        if found is None:
            raise NotFoundError(f"unknown candidate {candidate_id}")
        return slice_record(found[0]), str(found[1])


def llm_rated_candidates(store: Store, model: str, prompt_version: str) -> set[int]:
    """Candidates this model already rated with this prompt version."""
    with store.read() as session:
        return set(
            session.scalars(
                select(Rating.candidate_id).where(
                    Rating.observer_kind == "llm",
                    Rating.llm_model == model,
                    Rating.llm_prompt_version == prompt_version,
                    Rating.candidate_id.is_not(None),
                )
            ).all()
        )
