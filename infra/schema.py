"""PostgreSQL tables of the projection. Alembic migrations create them; nothing calls create_all."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", Uuid(as_uuid=False), primary_key=True),
    Column("status", Text, nullable=False),
    Column("model_version", Text),
    Column("result_label", Text),
    Column("result_score", Float),
    Column("result_probabilities", JSONB),
    Column("result_model_version", Text),
    Column("error_type", Text),
    Column("error", Text),
    Column("retry_count", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("last_entry_id", Text, nullable=False),
    CheckConstraint(
        "status IN ('queued', 'started', 'succeeded', 'failed')", name="jobs_status_valid"
    ),
)
Index("jobs_status_idx", jobs.c.status)

# Where each projection has read the event log up to. Written in the same transaction as the
# rows it covers, so a crash can neither skip nor repeat an event.
projector_checkpoints = Table(
    "projector_checkpoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("last_entry_id", Text, nullable=False),
    Column("entries_read", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
