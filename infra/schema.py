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

# Every entry of the event log, append-only, written by the projector in the same transaction as
# the rows it folds into, so the Redis stream can be trimmed without losing history. Stream ids
# compare as (ms, seq) numbers, not as text, hence the two bigint columns to order by.
events = Table(
    "events",
    metadata,
    Column("entry_id", Text, primary_key=True),
    Column("entry_ms", BigInteger, nullable=False),
    Column("entry_seq", BigInteger, nullable=False),
    # Null for entries that do not decode; they are archived as they are all the same.
    Column("job_id", Text),
    Column("type", Text),
    Column("schema_version", Integer),
    Column("occurred_at", DateTime(timezone=True)),
    Column("fields", JSONB, nullable=False),
)
Index("events_position_idx", events.c.entry_ms, events.c.entry_seq, unique=True)
Index("events_job_idx", events.c.job_id, events.c.entry_ms, events.c.entry_seq)
