"""SegEx: rating effort and revisions, rating studies, LLM observer call details and failures.

Revision ID: 0002
Revises: 0004
Create Date: 2026-12-01 21:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_studies() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("ratings_per_case", sa.Integer(), nullable=False),
        sa.Column("blinded", sa.Boolean(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("ratings_per_case >= 1", name=op.f("ck_studies_ratings_per_case")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["annotators.id"], name=op.f("fk_studies_created_by_id_annotators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studies")),
        sa.UniqueConstraint("name", name=op.f("uq_studies_name")),
    )
    op.create_table(
        "study_raters",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_study_raters_annotator_id_annotators")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_raters_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("study_id", "annotator_id", name=op.f("pk_study_raters")),
    )
    op.create_table(
        "study_cases",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name=op.f("fk_study_cases_candidate_id_candidates")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_cases_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("study_id", "candidate_id", name=op.f("pk_study_cases")),
    )
    op.create_table(
        "study_leases",
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"], ["annotators.id"], name=op.f("fk_study_leases_annotator_id_annotators")
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name=op.f("fk_study_leases_candidate_id_candidates")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_study_leases_study_id_studies")
        ),
        sa.PrimaryKeyConstraint(
            "study_id", "candidate_id", "annotator_id", name=op.f("pk_study_leases")
        ),
    )


def _create_llm_failures() -> None:
    op.create_table(
        "llm_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("correction_id", sa.Integer(), nullable=True),
        sa.Column("llm_model", sa.String(length=200), nullable=False),
        sa.Column("llm_endpoint", sa.String(length=500), nullable=False),
        sa.Column("llm_prompt_version", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name=op.f("fk_llm_failures_candidate_id_candidates")
        ),
        sa.ForeignKeyConstraint(
            ["correction_id"],
            ["corrections.id"],
            name=op.f("fk_llm_failures_correction_id_corrections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_failures")),
    )
    op.create_index(
        op.f("ix_llm_failures_candidate_id"), "llm_failures", ["candidate_id"], unique=False
    )


def upgrade() -> None:
    """Apply this revision."""
    _create_studies()
    _create_llm_failures()
    with op.batch_alter_table("ratings") as batch:
        batch.add_column(sa.Column("seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("edits", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("revises_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("study_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("llm_endpoint", sa.String(length=500), nullable=True))
        batch.add_column(sa.Column("latency_ms", sa.Float(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_ratings_revises_id_ratings"), "ratings", ["revises_id"], ["id"]
        )
        batch.create_foreign_key(
            op.f("fk_ratings_study_id_studies"), "studies", ["study_id"], ["id"]
        )
        batch.create_unique_constraint(op.f("uq_ratings_revises_id"), ["revises_id"])
        batch.create_index(op.f("ix_ratings_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("ratings") as batch:
        batch.drop_index(op.f("ix_ratings_study_id"))
        batch.drop_constraint(op.f("uq_ratings_revises_id"), type_="unique")
        batch.drop_constraint(op.f("fk_ratings_study_id_studies"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_ratings_revises_id_ratings"), type_="foreignkey")
        for column in ("latency_ms", "llm_endpoint", "study_id", "revises_id", "edits", "seconds"):
            batch.drop_column(column)
    op.drop_index(op.f("ix_llm_failures_candidate_id"), table_name="llm_failures")
    op.drop_table("llm_failures")
    for table in ("study_leases", "study_cases", "study_raters", "studies"):
        op.drop_table(table)
