"""events archive: every event of the log, kept after the stream is trimmed

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("entry_id", sa.Text, primary_key=True),
        sa.Column("entry_ms", sa.BigInteger, nullable=False),
        sa.Column("entry_seq", sa.BigInteger, nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("type", sa.Text),
        sa.Column("schema_version", sa.Integer),
        sa.Column("occurred_at", sa.DateTime(timezone=True)),
        sa.Column("fields", JSONB, nullable=False),
    )
    op.create_index("events_position_idx", "events", ["entry_ms", "entry_seq"], unique=True)
    op.create_index("events_job_idx", "events", ["job_id", "entry_ms", "entry_seq"])


def downgrade() -> None:
    op.drop_index("events_job_idx", table_name="events")
    op.drop_index("events_position_idx", table_name="events")
    op.drop_table("events")
