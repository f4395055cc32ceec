"""Neutral case names: file names stored before issue 13 are replaced by ``case-<hash>``.

Earlier versions stored the uploaded file's base name in ``slices.source_name``; a name such as
``SURNAME_FIRSTNAME_PID12345.dcm`` identifies the patient. Every row now gets the neutral name
the imaging package gives new slices: ``case-`` and the first 12 hex digits of the content hash.
The downgrade keeps the neutral names (the old ones are gone on purpose).

Revision ID: 0005
Revises: 0002
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    slices = sa.table("slices", sa.column("source_name", sa.String), sa.column("content_hash", sa.String))
    op.execute(
        slices.update().values(
            source_name=sa.literal("case-") + sa.func.substr(slices.c.content_hash, 1, 12)
        )
    )


def downgrade() -> None:
    """Nothing to undo: the identifying names must not come back."""
