"""jobs by the time they ended: the console's overview counts and times the jobs that ended in
the last minutes, of every tenant (an admin's) or of one, without reading the whole table

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("jobs_finished_idx", "jobs", ["finished_at"])


def downgrade() -> None:
    op.drop_index("jobs_finished_idx", table_name="jobs")
