"""Volume cases: a 3D study per structure and the status of each slice's mask.

Revision ID: 0004
Revises: 0001
Create Date: 2026-12-01 22:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "volume_cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("structure", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=32), nullable=False),
        sa.Column("source_format", sa.String(length=32), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("spacing", sa.JSON(), nullable=False),
        sa.Column("affine", sa.JSON(), nullable=False),
        sa.Column("slice_hashes", sa.JSON(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "depth > 0 AND height > 0 AND width > 0", name=op.f("ck_volume_cases_shape")
        ),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_volume_cases_annotator_id_annotators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_cases")),
    )
    op.create_table(
        "volume_slices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("volume_case_id", sa.Integer(), nullable=False),
        sa.Column("slice_index", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mask_png", sa.LargeBinary(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("correction_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('propagated', 'accepted', 'corrected')",
            name=op.f("ck_volume_slices_status"),
        ),
        sa.CheckConstraint(
            "(status = 'propagated') = (correction_id IS NULL)",
            name=op.f("ck_volume_slices_human_has_correction"),
        ),
        sa.ForeignKeyConstraint(
            ["correction_id"],
            ["corrections.id"],
            name=op.f("fk_volume_slices_correction_id_corrections"),
        ),
        sa.ForeignKeyConstraint(
            ["slice_id"], ["slices.id"], name=op.f("fk_volume_slices_slice_id_slices")
        ),
        sa.ForeignKeyConstraint(
            ["volume_case_id"],
            ["volume_cases.id"],
            name=op.f("fk_volume_slices_volume_case_id_volume_cases"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_volume_slices")),
        sa.UniqueConstraint(
            "volume_case_id", "slice_index", name=op.f("uq_volume_slices_volume_case_id")
        ),
    )
    op.create_index(
        op.f("ix_volume_slices_volume_case_id"),
        "volume_slices",
        ["volume_case_id"],
        unique=False,
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_volume_slices_volume_case_id"), table_name="volume_slices")
    op.drop_table("volume_slices")
    op.drop_table("volume_cases")
