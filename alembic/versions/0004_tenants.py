"""tenants: every job's tenant, API keys, and each tenant's limits

Jobs projected before tenants existed are the default tenant's, as their events read.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default: PostgreSQL adds the column without rewriting the table.
    op.add_column("jobs", sa.Column("tenant", sa.Text, nullable=False, server_default="default"))
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),
        sa.Column("hint", sa.Text, nullable=False),
        sa.Column("requests_per_s", sa.Float),
        sa.Column("requests_burst", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("api_keys_tenant_idx", "api_keys", ["tenant"])
    op.create_table(
        "tenants",
        sa.Column("tenant", sa.Text, primary_key=True),
        sa.Column("requests_per_s", sa.Float),
        sa.Column("requests_burst", sa.Integer),
        sa.Column("jobs_per_s", sa.Float),
        sa.Column("jobs_burst", sa.Integer),
        sa.Column("max_queued", sa.BigInteger),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tenants")
    op.drop_index("api_keys_tenant_idx", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_column("jobs", "tenant")
