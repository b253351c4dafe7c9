"""job control: cancelled jobs, batches, deadlines, and the indexes that list jobs

A job may now be cancelled (a fourth terminal status, with its reason), belong to a batch under
the client's name for it, and carry a deadline. Listing a tenant's jobs newest first, with or
without one filter, reads one index each, in the order of the page.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STATUSES_BEFORE = "status IN ('queued', 'started', 'succeeded', 'failed')"
STATUSES = "status IN ('queued', 'started', 'succeeded', 'failed', 'cancelled')"

# name -> (columns after the tenant, partial-index condition)
LISTING_INDEXES: dict[str, tuple[list[str], str | None]] = {
    "jobs_tenant_created_idx": ([], None),
    "jobs_tenant_status_idx": (["status"], None),
    "jobs_tenant_model_idx": (["model_version"], None),
    "jobs_tenant_label_idx": (["result_label"], "result_label IS NOT NULL"),
    "jobs_tenant_batch_idx": (["batch_id"], "batch_id IS NOT NULL"),
}


def upgrade() -> None:
    op.add_column("jobs", sa.Column("batch_id", sa.Text))
    op.add_column("jobs", sa.Column("custom_id", sa.Text))
    op.add_column("jobs", sa.Column("deadline", sa.DateTime(timezone=True)))
    op.add_column("jobs", sa.Column("cancel_reason", sa.Text))
    op.drop_constraint("jobs_status_valid", "jobs", type_="check")
    op.create_check_constraint("jobs_status_valid", "jobs", STATUSES)
    for name, (columns, where) in LISTING_INDEXES.items():
        op.create_index(
            name,
            "jobs",
            ["tenant", *columns, "created_at", "job_id"],
            postgresql_where=sa.text(where) if where else None,
        )


def downgrade() -> None:
    for name in LISTING_INDEXES:
        op.drop_index(name, table_name="jobs")
    # The release before knows no cancelled jobs: they read as failed, with the reason kept.
    op.execute(
        "UPDATE jobs SET status = 'failed', error_type = 'JobCancelled', "
        "error = 'cancelled: ' || coalesce(cancel_reason, '') WHERE status = 'cancelled'"
    )
    op.drop_constraint("jobs_status_valid", "jobs", type_="check")
    op.create_check_constraint("jobs_status_valid", "jobs", STATUSES_BEFORE)
    for column in ("cancel_reason", "deadline", "custom_id", "batch_id"):
        op.drop_column("jobs", column)
