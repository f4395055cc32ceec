"""Initial schema: slices, predictions, candidates, corrections, ratings, models, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 08:52:45.368823
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "annotators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "role IN ('annotator', 'reviewer', 'admin')",
            name=op.f("ck_annotators_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotators")),
        sa.UniqueConstraint("name", name=op.f("uq_annotators_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("bundle_ref", sa.String(length=64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("trained_through_correction_id", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["model_versions.id"],
            name=op.f("fk_model_versions_parent_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", name=op.f("uq_model_versions_name")),
    )
    op.create_index(
        "uq_model_versions_one_active",
        "model_versions",
        ["is_active"],
        unique=True,
        sqlite_where=sa.text("is_active = 1"),
        postgresql_where=sa.text("is_active"),
    )

    op.create_table(
        "slices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("modality", sa.String(length=32), nullable=False),
        sa.Column("units", sa.String(length=32), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("spacing_row", sa.Float(), nullable=True),
        sa.Column("spacing_col", sa.Float(), nullable=True),
        sa.Column("window_level", sa.Float(), nullable=True),
        sa.Column("window_width", sa.Float(), nullable=True),
        sa.Column("window_name", sa.String(length=64), nullable=True),
        sa.Column("source_format", sa.String(length=32), nullable=False),
        sa.Column("source_name", sa.String(length=255), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("pixels_blob", sa.String(length=64), nullable=False),
        sa.Column("display_blob", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("height > 0 AND width > 0", name=op.f("ck_slices_shape")),
        sa.CheckConstraint("length(content_hash) = 64", name=op.f("ck_slices_hash_length")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slices")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_slices_content_hash")),
    )
    op.create_table(
        "case_leases",
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("leased_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_case_leases_annotator_id_annotators"),
        ),
        sa.ForeignKeyConstraint(
            ["slice_id"], ["slices.id"], name=op.f("fk_case_leases_slice_id_slices")
        ),
        sa.PrimaryKeyConstraint("slice_id", name=op.f("pk_case_leases")),
    )
    op.create_index(
        op.f("ix_case_leases_annotator_id"),
        "case_leases",
        ["annotator_id"],
        unique=False,
    )

    op.create_table(
        "fine_tuning_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("running_slot", sa.Boolean(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("base_model_version_id", sa.Integer(), nullable=True),
        sa.Column("result_model_version_id", sa.Integer(), nullable=True),
        sa.Column("examples_count", sa.Integer(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "(status = 'running' AND running_slot IS NOT NULL) OR (status <> 'running' AND running_slot IS NULL)",
            name=op.f("ck_fine_tuning_jobs_running_slot"),
        ),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')",
            name=op.f("ck_fine_tuning_jobs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["base_model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_fine_tuning_jobs_base_model_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["result_model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_fine_tuning_jobs_result_model_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fine_tuning_jobs")),
        sa.UniqueConstraint("running_slot", name=op.f("uq_fine_tuning_jobs_running_slot")),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("structure", sa.String(length=64), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("class_probability", sa.Float(), nullable=True),
        sa.Column("cam_summary", sa.JSON(), nullable=False),
        sa.Column("prompt_box", sa.JSON(), nullable=True),
        sa.Column("prompt_point", sa.JSON(), nullable=True),
        sa.Column("cam_threshold", sa.Float(), nullable=True),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "class_probability IS NULL OR (class_probability >= 0 AND class_probability <= 1)",
            name=op.f("ck_predictions_probability"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_predictions_model_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["slice_id"], ["slices.id"], name=op.f("fk_predictions_slice_id_slices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(op.f("ix_predictions_slice_id"), "predictions", ["slice_id"], unique=False)

    op.create_table(
        "candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("area", sa.Integer(), nullable=False),
        sa.Column("mask_png", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("rank >= 0", name=op.f("ck_candidates_rank")),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_candidates_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_candidates")),
        sa.UniqueConstraint("prediction_id", "rank", name=op.f("uq_candidates_prediction_id")),
    )
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=False),
        sa.Column("original_mask_png", sa.LargeBinary(), nullable=False),
        sa.Column("final_mask_png", sa.LargeBinary(), nullable=False),
        sa.Column("final_area", sa.Integer(), nullable=False),
        sa.Column("dice", sa.Float(), nullable=False),
        sa.Column("changed_pixels", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "changed_pixels >= 0 AND clicks >= 0 AND seconds >= 0",
            name=op.f("ck_corrections_counts"),
        ),
        sa.CheckConstraint("dice >= 0 AND dice <= 1", name=op.f("ck_corrections_dice")),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_corrections_annotator_id_annotators"),
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_corrections_candidate_id_candidates"),
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_corrections_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_corrections")),
    )
    op.create_index(
        op.f("ix_corrections_annotator_id"),
        "corrections",
        ["annotator_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_corrections_prediction_id"),
        "corrections",
        ["prediction_id"],
        unique=False,
    )

    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=True),
        sa.Column("correction_id", sa.Integer(), nullable=True),
        sa.Column("observer_kind", sa.String(length=8), nullable=False),
        sa.Column("annotator_id", sa.Integer(), nullable=True),
        sa.Column("llm_model", sa.String(length=200), nullable=True),
        sa.Column("llm_prompt_version", sa.String(length=100), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("rubric", sa.JSON(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "(observer_kind = 'human' AND annotator_id IS NOT NULL) OR (observer_kind = 'llm' AND llm_model IS NOT NULL AND llm_prompt_version IS NOT NULL)",
            name=op.f("ck_ratings_observer_identity"),
        ),
        sa.CheckConstraint(
            "observer_kind IN ('human', 'llm')", name=op.f("ck_ratings_observer_kind")
        ),
        sa.CheckConstraint(
            "verdict IN ('accept', 'minor_edits', 'major_edits', 'reject')",
            name=op.f("ck_ratings_verdict"),
        ),
        sa.CheckConstraint(
            "(candidate_id IS NULL) <> (correction_id IS NULL)",
            name=op.f("ck_ratings_exactly_one_target"),
        ),
        sa.CheckConstraint("score >= 1 AND score <= 5", name=op.f("ck_ratings_score")),
        sa.ForeignKeyConstraint(
            ["annotator_id"],
            ["annotators.id"],
            name=op.f("fk_ratings_annotator_id_annotators"),
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_ratings_candidate_id_candidates"),
        ),
        sa.ForeignKeyConstraint(
            ["correction_id"],
            ["corrections.id"],
            name=op.f("fk_ratings_correction_id_corrections"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
    )
    op.create_index(op.f("ix_ratings_candidate_id"), "ratings", ["candidate_id"], unique=False)
    op.create_index(op.f("ix_ratings_correction_id"), "ratings", ["correction_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_ratings_correction_id"), table_name="ratings")
    op.drop_index(op.f("ix_ratings_candidate_id"), table_name="ratings")

    op.drop_table("ratings")
    op.drop_index(op.f("ix_corrections_prediction_id"), table_name="corrections")
    op.drop_index(op.f("ix_corrections_annotator_id"), table_name="corrections")

    op.drop_table("corrections")
    op.drop_table("candidates")
    op.drop_index(op.f("ix_predictions_slice_id"), table_name="predictions")

    op.drop_table("predictions")
    op.drop_table("fine_tuning_jobs")
    op.drop_index(op.f("ix_case_leases_annotator_id"), table_name="case_leases")

    op.drop_table("case_leases")
    op.drop_table("slices")
    op.drop_index(
        "uq_model_versions_one_active",
        sqlite_where=sa.text("is_active = 1"),
        postgresql_where=sa.text("is_active"),
        table_name="model_versions",
    )

    op.drop_table("model_versions")
    op.drop_table("annotators")
