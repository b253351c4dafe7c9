"""lanes: a checkpoint and archived entries per lane of a partition, and every job's lane

A partition's log became several streams, its lanes (one per tenant and kind of job); entry ids
are unique within one stream only. What was there before is the default lane's: the default
tenant's interactive jobs, whose stream is the partition's stream of before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# eventlog.lanes.DEFAULT_LANE's name, and its kind (domain.lanes.INTERACTIVE): a migration
# keeps its own copy of what it writes, whatever the code says later.
DEFAULT_LANE = "interactive:default"
INTERACTIVE = "interactive"


def upgrade() -> None:
    # Constant defaults: PostgreSQL adds the columns without rewriting the tables, and the rows
    # there are the default lane's.
    for table in ("projector_checkpoints", "events"):
        op.add_column(
            table, sa.Column("lane", sa.Text, nullable=False, server_default=DEFAULT_LANE)
        )
    op.drop_constraint("projector_checkpoints_pkey", "projector_checkpoints", type_="primary")
    op.create_primary_key(
        "projector_checkpoints_pkey", "projector_checkpoints", ["name", "partition", "lane"]
    )
    op.drop_constraint("events_pkey", "events", type_="primary")
    op.create_primary_key("events_pkey", "events", ["partition", "lane", "entry_id"])
    op.drop_index("events_position_idx", table_name="events")
    op.create_index(
        "events_position_idx",
        "events",
        ["partition", "lane", "entry_ms", "entry_seq"],
        unique=True,
    )
    op.add_column("jobs", sa.Column("lane", sa.Text, nullable=False, server_default=INTERACTIVE))


def downgrade() -> None:
    # Only the default lanes go back: the other lanes' checkpoints and archived entries would
    # collide with theirs (the release before lanes reads the default lanes alone). Jobs rows
    # stay, as they were projected.
    op.execute(f"DELETE FROM projector_checkpoints WHERE lane <> '{DEFAULT_LANE}'")
    op.execute(f"DELETE FROM events WHERE lane <> '{DEFAULT_LANE}'")
    op.drop_column("jobs", "lane")
    op.drop_index("events_position_idx", table_name="events")
    op.create_index(
        "events_position_idx", "events", ["partition", "entry_ms", "entry_seq"], unique=True
    )
    op.drop_constraint("events_pkey", "events", type_="primary")
    op.create_primary_key("events_pkey", "events", ["partition", "entry_id"])
    op.drop_constraint("projector_checkpoints_pkey", "projector_checkpoints", type_="primary")
    op.create_primary_key(
        "projector_checkpoints_pkey", "projector_checkpoints", ["name", "partition"]
    )
    for table in ("projector_checkpoints", "events"):
        op.drop_column(table, "lane")
