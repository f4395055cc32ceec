"""The annotation worklist: which slice an annotator should correct next.

Like MONAI Label's active-learning "next sample", each call hands out a slice that still has
no correction and leases it to the caller for a while, so that annotators working at the same
time are spread over different slices. Slices are served oldest first; an expired lease
returns its slice to the pool.

:func:`walk_case` is the studio's walk: every annotator through every slice once, each in an
order of their own, never two on one slice at the same time.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Collection
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, and_, delete, exists, func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage import validate
from storage.annotators import annotator_by_name
from storage.errors import InvalidInputError
from storage.models import Annotator, CaseLease, Correction, Prediction, Slice, utcnow
from storage.records import SliceRecord, slice_record
from storage.store import Store

DEFAULT_LEASE = timedelta(minutes=30)
WORKLIST_LOCK_KEY = 0x4144_4153_0001
_BATCH = 32


def _needs_work(structure: str | None) -> ColumnElement[bool]:
    """SQL condition: the slice has no correction (for ``structure`` when given)."""
    corrected = (
        select(Correction.id)
        .join(Prediction, Correction.prediction_id == Prediction.id)
        .where(Prediction.slice_id == Slice.id)
    )
    if structure is not None:
        corrected = corrected.where(Prediction.structure == structure)
    return ~exists(corrected)


def _try_claim(session: Session, slice_id: int, annotator_id: int, lease: timedelta) -> bool:
    now = utcnow()
    taken = cast(
        CursorResult[Any],
        session.execute(
            update(CaseLease)
            .where(
                CaseLease.slice_id == slice_id,
                (CaseLease.expires_at <= now) | (CaseLease.annotator_id == annotator_id),
            )
            .values(annotator_id=annotator_id, leased_at=now, expires_at=now + lease)
        ),
    )
    if taken.rowcount:
        return True
    try:
        with session.begin_nested():
            session.add(
                CaseLease(
                    slice_id=slice_id,
                    annotator_id=annotator_id,
                    leased_at=now,
                    expires_at=now + lease,
                )
            )
    except IntegrityError:
        return False  # someone else holds a live lease on it
    return True


def lease_in_session(
    store: Store, session: Session, slice_id: int, annotator: str, lease: timedelta = DEFAULT_LEASE
) -> bool:
    """Lease one slice to ``annotator`` inside the caller's write transaction; ``False`` when
    someone else holds a live lease on it (theirs is kept)."""
    store.serialize(session, WORKLIST_LOCK_KEY)
    return _try_claim(session, slice_id, annotator_by_name(session, annotator).id, lease)


def next_case(
    store: Store,
    annotator: str,
    *,
    structure: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    skip: Collection[str] = (),
) -> SliceRecord | None:
    """The next slice for ``annotator`` to correct, leased to them; ``None`` when all are done.

    An annotator who still holds a live lease on an uncorrected slice gets that slice again
    (unless its hash is in ``skip``), so a page reload does not hand out a second case. Slices
    leased to others are never handed out until their lease expires.
    """
    if lease <= timedelta(0):
        raise InvalidInputError(f"lease must be positive, got {lease}")
    if structure is not None:
        structure = validate.text(structure, "structure", max_length=64)
    skipped = set(skip)
    with store.write() as session:
        store.serialize(session, WORKLIST_LOCK_KEY)
        annotator_id = annotator_by_name(session, annotator).id
        now = utcnow()
        open_work = _needs_work(structure)
        held = session.scalars(
            select(Slice)
            .join(CaseLease, CaseLease.slice_id == Slice.id)
            .where(
                CaseLease.annotator_id == annotator_id,
                CaseLease.expires_at > now,
                open_work,
            )
            .order_by(Slice.id)
        ).all()
        for row in held:
            if row.content_hash not in skipped:
                _try_claim(session, row.id, annotator_id, lease)  # renew
                return slice_record(row)
        # Release what the annotator held but skipped or finished.
        session.execute(delete(CaseLease).where(CaseLease.annotator_id == annotator_id))
        free = ~exists(
            select(CaseLease.slice_id).where(
                and_(CaseLease.slice_id == Slice.id, CaseLease.expires_at > now)
            )
        )
        last_id = 0
        while True:
            rows = session.scalars(
                select(Slice)
                .where(open_work, free, Slice.id > last_id)
                .order_by(Slice.id)
                .limit(_BATCH)
            ).all()
            if not rows:
                return None
            for row in rows:
                last_id = row.id
                if row.content_hash in skipped:
                    continue
                if _try_claim(session, row.id, annotator_id, lease):
                    return slice_record(row)


def release_case(store: Store, annotator: str, content_hash: str) -> bool:
    """Give a leased slice back to the pool; whether the annotator held it."""
    with store.write() as session:
        annotator_id = annotator_by_name(session, annotator).id
        slice_id = session.scalar(select(Slice.id).where(Slice.content_hash == content_hash))
        if slice_id is None:
            return False
        result = cast(
            CursorResult[Any],
            session.execute(
                delete(CaseLease).where(
                    CaseLease.slice_id == slice_id, CaseLease.annotator_id == annotator_id
                )
            ),
        )
        return bool(result.rowcount)


def lease_holders(store: Store, annotators: Collection[str]) -> frozenset[str]:
    """Which of ``annotators`` (names) hold a live lease now; unknown names hold none."""
    names = sorted(set(annotators))
    if not names:
        return frozenset()
    with store.read() as session:
        held = session.scalars(
            select(Annotator.name)
            .join(CaseLease, CaseLease.annotator_id == Annotator.id)
            .where(Annotator.name.in_(names), CaseLease.expires_at > utcnow())
            .distinct()
        ).all()
        return frozenset(held)


def walk_order(annotator: str, content_hash: str) -> str:
    """The sort key of a slice in ``annotator``'s walk: a hash of both, so every annotator
    has an order of their own that stays the same between calls."""
    return hashlib.sha256(f"{annotator}\0{content_hash}".encode()).hexdigest()


def _corrected_by(annotator_id: int) -> Any:
    """``EXISTS`` a correction of the slice (``Slice.id``) by ``annotator_id``."""
    return exists(
        select(Correction.id)
        .join(Prediction, Correction.prediction_id == Prediction.id)
        .where(Prediction.slice_id == Slice.id, Correction.annotator_id == annotator_id)
    )


def walk_left(store: Store, annotator: str) -> int:
    """How many slices ``annotator``'s walk holds (those they have not corrected yet)."""
    with store.read() as session:
        annotator_id = annotator_by_name(session, annotator).id
        found = session.scalar(select(func.count(Slice.id)).where(~_corrected_by(annotator_id)))
        return int(found or 0)


def walk_case(
    store: Store,
    annotator: str,
    *,
    after: str | None = None,
    visited: Collection[str] = (),
    lease: timedelta = DEFAULT_LEASE,
) -> SliceRecord | None:
    """The next slice of ``annotator``'s walk through the worklist, leased to them.

    Every annotator goes through every slice once (a slice leaves *their* walk when they
    have corrected it), in an order of their own (:func:`walk_order`), starting after the
    slice ``after`` (the content hash of the one on screen) and wrapping around. ``visited``
    (content hashes) are the slices they were already shown in this round: the next slice is
    the first one not visited; one someone else holds a live lease on is passed over (two
    annotators never have the same case open) and stays unvisited for later. Their earlier
    leases are released.

    Returns:
        The next unvisited slice; ``None`` when every unvisited one is open by someone else
        (or nothing is left for them at all). When every slice was visited, a new round: the
        next slice after ``after`` in their order (a visited one, so the caller knows).
    """
    if lease <= timedelta(0):
        raise InvalidInputError(f"lease must be positive, got {lease}")
    with store.write() as session:
        store.serialize(session, WORKLIST_LOCK_KEY)
        annotator_id = annotator_by_name(session, annotator).id
        rows = session.execute(
            select(Slice.id, Slice.content_hash).where(~_corrected_by(annotator_id))
        ).all()
        session.execute(delete(CaseLease).where(CaseLease.annotator_id == annotator_id))
        order = sorted(rows, key=lambda r: walk_order(annotator, r.content_hash))
        keys = [walk_order(annotator, r.content_hash) for r in order]
        start = 0
        if after is not None:
            start = bisect.bisect_right(keys, walk_order(annotator, after))
        ring = order[start:] + order[:start]
        others = [r for r in ring if r.content_hash != after] or ring
        unvisited = [r for r in others if r.content_hash not in visited]
        for row in unvisited or others:  # a new round once every slice was visited
            if _try_claim(session, row.id, annotator_id, lease):
                return slice_record(session.get_one(Slice, row.id))
        return None
