"""Annotators: the people who correct and rate masks."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage import validate
from storage.errors import InvalidInputError, NotFoundError
from storage.models import ROLES, Annotator
from storage.records import AnnotatorRecord, annotator_record
from storage.store import Store


def annotator_by_name(session: Session, name: str) -> Annotator:
    """The annotator row called ``name``, or NotFoundError."""
    row = session.scalar(select(Annotator).where(Annotator.name == name))
    if row is None:
        raise NotFoundError(
            f"unknown annotator {name!r}; register them first with ensure_annotator()"
        )
    return row


def ensure_annotator(store: Store, name: str, role: str = "annotator") -> AnnotatorRecord:
    """The annotator ``name``, created with ``role`` if new.

    An existing annotator keeps their role (changing a role is :func:`set_role`'s job), so a
    login that calls this on every visit cannot demote an admin.
    """
    name = validate.text(name, "annotator name", max_length=200)
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    with store.write() as session:
        row = session.scalar(select(Annotator).where(Annotator.name == name))
        if row is None:
            row = Annotator(name=name, role=role)
            session.add(row)
            session.flush()
        return annotator_record(row)


def set_role(store: Store, name: str, role: str) -> AnnotatorRecord:
    """Change an existing annotator's role."""
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
    with store.write() as session:
        row = annotator_by_name(session, name)
        row.role = role
        return annotator_record(row)


def list_annotators(store: Store) -> list[AnnotatorRecord]:
    """All annotators, by name."""
    with store.read() as session:
        rows = session.scalars(select(Annotator).order_by(Annotator.name))
        return [annotator_record(row) for row in rows]
