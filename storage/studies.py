"""Rating studies: several annotators rate the same masks independently, for agreement.

An admin creates a study from a set of candidates (the masks to rate), the raters, and how many
independent ratings each case needs. :func:`next_study_case` hands a rater the next case in
their own randomised order (seeded by the study and the rater, so a reload gives the same
order) among the cases that still need a rating from someone new: a case goes to exactly
``ratings_per_case`` different raters and never twice to the same one. A handed-out case holds
one of its slots for the lease time. In a blinded study nobody but an admin sees other raters'
ratings (:func:`study_ratings`); the studio also hides the model's scores there.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from storage import validate
from storage.annotators import annotator_by_name
from storage.errors import InvalidInputError, NotFoundError
from storage.models import (
    Annotator,
    Candidate,
    Correction,
    Prediction,
    Rating,
    Slice,
    Study,
    StudyCase,
    StudyLease,
    StudyRater,
    utcnow,
)
from storage.ratings import HumanObserver, add_rating, check_values, latest_only, rating_record
from storage.records import RatingRecord, StudyCaseRecord, StudyRecord
from storage.store import Store

DEFAULT_STUDY_LEASE = timedelta(minutes=30)
STUDY_LOCK_KEY = 0x4144_4153_0016


def corrected_candidates(store: Store, structure: str | None = None) -> list[int]:
    """The candidates clinicians started their corrections from (the natural cases of a
    study: each has a final mask to compare with), oldest first, each once."""
    with store.read() as session:
        query = select(Correction.candidate_id).join(
            Prediction, Correction.prediction_id == Prediction.id
        )
        if structure is not None:
            query = query.where(Prediction.structure == structure)
        ids = session.scalars(query.order_by(Correction.id)).all()
    return list(dict.fromkeys(ids))


def study_row(session: Session, study: int | str) -> Study:
    """The study row with this id or name, or NotFoundError."""
    condition = Study.id == study if isinstance(study, int) else Study.name == study
    query = select(Study).where(condition)
    row = session.scalar(query)
    if row is None:
        raise NotFoundError(f"unknown study {study!r}")
    return row


def _study_record(session: Session, row: Study) -> StudyRecord:
    raters = session.scalars(
        select(Annotator.name)
        .join(StudyRater, StudyRater.annotator_id == Annotator.id)
        .where(StudyRater.study_id == row.id)
        .order_by(Annotator.name)
    ).all()
    cases = session.scalar(select(func.count()).where(StudyCase.study_id == row.id)) or 0
    done = session.scalar(
        select(func.count()).where(
            Rating.study_id == row.id, Rating.observer_kind == "human", latest_only()
        )
    )
    creator = session.get(Annotator, row.created_by_id)
    return StudyRecord(
        id=row.id,
        name=row.name,
        ratings_per_case=row.ratings_per_case,
        blinded=row.blinded,
        seed=row.seed,
        created_by="" if creator is None else creator.name,
        raters=tuple(raters),
        cases=int(cases),
        ratings_done=int(done or 0),
        created_at=row.created_at,
    )


def _check_new_study(
    name: str, raters: Sequence[str], candidate_ids: Sequence[int], ratings_per_case: int
) -> tuple[str, list[str], list[int], int]:
    name = validate.text(name, "study name", max_length=200)
    names = [validate.text(r, "rater name", max_length=200) for r in raters]
    if len(set(names)) != len(names):
        raise InvalidInputError("a study names each rater once")
    ids = [validate.non_negative_int(c, "candidate id") for c in candidate_ids]
    if not ids:
        raise InvalidInputError("a study needs at least one case")
    if len(set(ids)) != len(ids):
        raise InvalidInputError("a study lists each case once")
    per_case = validate.non_negative_int(ratings_per_case, "ratings per case")
    if per_case < 1:
        raise InvalidInputError("each case needs at least one rating")
    if per_case > len(names):
        raise InvalidInputError(
            f"{per_case} independent ratings per case need at least {per_case} raters; "
            f"the study has {len(names)}"
        )
    return name, names, ids, per_case


def create_study(
    store: Store,
    *,
    name: str,
    admin: str,
    raters: Sequence[str],
    candidate_ids: Sequence[int],
    ratings_per_case: int,
    blinded: bool = True,
    seed: int | None = None,
) -> StudyRecord:
    """Create a study (``admin`` must have the admin role; raters must be registered)."""
    name, names, ids, per_case = _check_new_study(name, raters, candidate_ids, ratings_per_case)
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    with store.write() as session:
        creator = annotator_by_name(session, admin)
        if creator.role != "admin":
            raise InvalidInputError(f"only an admin creates studies; {admin!r} is a {creator.role}")
        if session.scalar(select(Study.id).where(Study.name == name)) is not None:
            raise InvalidInputError(f"a study called {name!r} already exists")
        rater_rows = [annotator_by_name(session, r) for r in names]
        found = set(session.scalars(select(Candidate.id).where(Candidate.id.in_(ids))).all())
        missing = [c for c in ids if c not in found]
        if missing:
            raise NotFoundError(f"unknown candidates: {', '.join(map(str, missing[:10]))}")
        row = Study(
            name=name,
            ratings_per_case=per_case,
            blinded=bool(blinded),
            seed=seed,
            created_by_id=creator.id,
        )
        session.add(row)
        session.flush()
        session.add_all(StudyRater(study_id=row.id, annotator_id=r.id) for r in rater_rows)
        session.add_all(StudyCase(study_id=row.id, candidate_id=c) for c in ids)
        session.flush()
        return _study_record(session, row)


def get_study(store: Store, study: int | str) -> StudyRecord:
    """The study with this id or name."""
    with store.read() as session:
        return _study_record(session, study_row(session, study))


def list_studies(store: Store, viewer: str | None = None) -> list[StudyRecord]:
    """All studies (``viewer`` given and not an admin: only those they rate in), newest first."""
    with store.read() as session:
        query = select(Study).order_by(Study.id.desc())
        if viewer is not None:
            person = annotator_by_name(session, viewer)
            if person.role != "admin":
                query = query.join(StudyRater, StudyRater.study_id == Study.id).where(
                    StudyRater.annotator_id == person.id
                )
        return [_study_record(session, row) for row in session.scalars(query).all()]


def rater_order(candidate_ids: Sequence[int], seed: int, annotator_id: int) -> list[int]:
    """The order one rater sees the cases in: a shuffle seeded by study and rater."""
    order = sorted(candidate_ids)
    random.Random(seed * 1_000_003 + annotator_id).shuffle(order)
    return order


def _rater(session: Session, study: Study, rater: str) -> Annotator:
    person = annotator_by_name(session, rater)
    member = session.get(StudyRater, (study.id, person.id))
    if member is None:
        raise InvalidInputError(f"{rater!r} is not a rater of study {study.name!r}")
    return person


def _slots(session: Session, study: Study, rater_id: int) -> tuple[set[int], dict[int, int]]:
    """Cases ``rater_id`` already rated, and per case the slots others hold (ratings by other
    raters plus their live leases)."""
    rated = session.execute(
        select(Rating.candidate_id, Rating.annotator_id)
        .where(Rating.study_id == study.id, Rating.observer_kind == "human")
        .distinct()
    ).all()
    mine = {c for c, a in rated if a == rater_id}
    taken: dict[int, int] = {}
    for candidate, annotator in rated:
        if annotator != rater_id:
            taken[candidate] = taken.get(candidate, 0) + 1
    leases = session.scalars(
        select(StudyLease.candidate_id).where(
            StudyLease.study_id == study.id,
            StudyLease.annotator_id != rater_id,
            StudyLease.expires_at > utcnow(),
        )
    ).all()
    for candidate in leases:
        taken[candidate] = taken.get(candidate, 0) + 1
    return mine, taken


def _case_record(
    session: Session, study: Study, candidate_id: int, position: int, total: int
) -> StudyCaseRecord:
    slice_hash, structure = session.execute(
        select(Slice.content_hash, Prediction.structure)
        .join(Prediction, Prediction.slice_id == Slice.id)
        .join(Candidate, Candidate.prediction_id == Prediction.id)
        .where(Candidate.id == candidate_id)
    ).one()
    return StudyCaseRecord(
        study_id=study.id,
        candidate_id=candidate_id,
        slice_hash=slice_hash,
        structure=structure,
        position=position,
        total=total,
    )


def next_study_case(
    store: Store, study: int | str, rater: str, *, lease: timedelta = DEFAULT_STUDY_LEASE
) -> StudyCaseRecord | None:
    """The next case ``rater`` should rate in ``study``, leased to them; ``None`` when they have
    nothing left (they rated every case they may, or the others filled the remaining slots)."""
    if lease <= timedelta(0):
        raise InvalidInputError(f"lease must be positive, got {lease}")
    with store.write() as session:
        store.serialize(session, STUDY_LOCK_KEY)
        row = study_row(session, study)
        person = _rater(session, row, rater)
        cases = session.scalars(select(StudyCase.candidate_id).where(StudyCase.study_id == row.id))
        order = rater_order(list(cases), row.seed, person.id)
        mine, taken = _slots(session, row, person.id)
        open_cases = [c for c in order if c not in mine and taken.get(c, 0) < row.ratings_per_case]
        now = utcnow()
        held = set(
            session.scalars(
                select(StudyLease.candidate_id).where(
                    StudyLease.study_id == row.id,
                    StudyLease.annotator_id == person.id,
                    StudyLease.expires_at > now,
                )
            ).all()
        )
        session.execute(
            delete(StudyLease).where(
                StudyLease.study_id == row.id, StudyLease.annotator_id == person.id
            )
        )
        if not open_cases:
            return None
        chosen = next((c for c in open_cases if c in held), open_cases[0])
        session.add(
            StudyLease(
                study_id=row.id,
                candidate_id=chosen,
                annotator_id=person.id,
                expires_at=now + lease,
            )
        )
        done = len(mine)
        return _case_record(session, row, chosen, done + 1, done + len(open_cases))


def record_study_rating(
    store: Store,
    study: int | str,
    *,
    rater: str,
    candidate_id: int,
    score: int,
    verdict: str,
    rubric: dict[str, bool] | None = None,
    comment: str = "",
    seconds: float | None = None,
    edits: int | None = None,
) -> RatingRecord:
    """Store ``rater``'s rating of a study case. Refused when the case is not in the study,
    the rater already rated it (revise that rating instead) or its slots are all taken."""
    values = check_values(score, verdict, rubric, comment, seconds, edits)
    with store.write() as session:
        store.serialize(session, STUDY_LOCK_KEY)
        row = study_row(session, study)
        person = _rater(session, row, rater)
        if session.get(StudyCase, (row.id, candidate_id)) is None:
            raise InvalidInputError(f"candidate {candidate_id} is not a case of {row.name!r}")
        mine, taken = _slots(session, row, person.id)
        if candidate_id in mine:
            raise InvalidInputError(
                "you already rated this case in this study; revise your rating instead"
            )
        if taken.get(candidate_id, 0) >= row.ratings_per_case:
            raise InvalidInputError(
                f"this case already has its {row.ratings_per_case} ratings; take the next case"
            )
        session.execute(
            delete(StudyLease).where(
                StudyLease.study_id == row.id, StudyLease.annotator_id == person.id
            )
        )
        return add_rating(
            session,
            observer=HumanObserver(rater),
            values=values,
            candidate_id=candidate_id,
            correction_id=None,
            study_id=row.id,
        )


def study_ratings(store: Store, study: int | str, *, viewer: str) -> list[RatingRecord]:
    """The ratings of a study that ``viewer`` may see, latest versions only, oldest first: an
    admin (or anyone, when the study is not blinded) sees all; a rater in a blinded study
    only their own."""
    with store.read() as session:
        row = study_row(session, study)
        person = annotator_by_name(session, viewer)
        query = (
            select(Rating, Annotator.name)
            .join(Annotator, Rating.annotator_id == Annotator.id)
            .where(Rating.study_id == row.id, latest_only())
            .order_by(Rating.id)
        )
        if row.blinded and person.role != "admin":
            query = query.where(Rating.annotator_id == person.id)
        return [rating_record(r, name) for r, name in session.execute(query).all()]


def study_case_ids(store: Store, study: int | str) -> list[int]:
    """The candidates of a study, by id."""
    with store.read() as session:
        row = study_row(session, study)
        return list(
            session.scalars(
                select(StudyCase.candidate_id)
                .where(StudyCase.study_id == row.id)
                .order_by(StudyCase.candidate_id)
            ).all()
        )
