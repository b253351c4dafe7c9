"""partitions: a checkpoint per (projection, partition), archived entries keyed by partition

The log became several streams; entry ids are unique within a stream only. What was there
before is partition 0.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("projector_checkpoints", "events"):
        op.add_column(table, sa.Column("partition", sa.Integer, nullable=False, server_default="0"))
    op.drop_constraint("projector_checkpoints_pkey", "projector_checkpoints", type_="primary")
    op.create_primary_key(
        "projector_checkpoints_pkey", "projector_checkpoints", ["name", "partition"]
    )
    op.drop_constraint("events_pkey", "events", type_="primary")
    op.create_primary_key("events_pkey", "events", ["partition", "entry_id"])
    op.drop_index("events_position_idx", table_name="events")
    op.create_index(
        "events_position_idx", "events", ["partition", "entry_ms", "entry_seq"], unique=True
    )


def downgrade() -> None:
    # Only a log of one partition goes back: rows of the others would collide.
    op.execute("DELETE FROM projector_checkpoints WHERE partition <> 0")
    op.execute("DELETE FROM events WHERE partition <> 0")
    op.drop_index("events_position_idx", table_name="events")
    op.create_index("events_position_idx", "events", ["entry_ms", "entry_seq"], unique=True)
    op.drop_constraint("events_pkey", "events", type_="primary")
    op.create_primary_key("events_pkey", "events", ["entry_id"])
    op.drop_constraint("projector_checkpoints_pkey", "projector_checkpoints", type_="primary")
    op.create_primary_key("projector_checkpoints_pkey", "projector_checkpoints", ["name"])
    for table in ("projector_checkpoints", "events"):
        op.drop_column(table, "partition")
