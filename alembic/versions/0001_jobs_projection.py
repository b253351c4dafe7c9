"""jobs projection and projector checkpoints

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.Uuid(as_uuid=False), primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text),
        sa.Column("result_label", sa.Text),
        sa.Column("result_score", sa.Float),
        sa.Column("result_probabilities", JSONB),
        sa.Column("result_model_version", sa.Text),
        sa.Column("error_type", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("retry_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_entry_id", sa.Text, nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'started', 'succeeded', 'failed')", name="jobs_status_valid"
        ),
    )
    op.create_index("jobs_status_idx", "jobs", ["status"])
    op.create_table(
        "projector_checkpoints",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("last_entry_id", sa.Text, nullable=False),
        sa.Column("entries_read", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projector_checkpoints")
    op.drop_index("jobs_status_idx", table_name="jobs")
    op.drop_table("jobs")
