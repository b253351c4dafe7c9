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
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

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
    Column("tenant", Text, nullable=False, server_default="default"),
    # The job's kind of lane (domain.lanes): "interactive" (submitted alone) or "bulk" (an item
    # of a batch). With the tenant it names the lane, and so the stream, of the job's events.
    Column("lane", Text, nullable=False, server_default="interactive"),
    # The batch the job was submitted in and the client's name for it there (custom_id).
    Column("batch_id", Text),
    Column("custom_id", Text),
    Column("deadline", DateTime(timezone=True)),
    # domain.cancellation.CancelReason, for a cancelled job.
    Column("cancel_reason", Text),
    CheckConstraint(
        "status IN ('queued', 'started', 'succeeded', 'failed', 'cancelled')",
        name="jobs_status_valid",
    ),
)
Index("jobs_status_idx", jobs.c.status)
# The overview (readmodel.stats): the jobs that ended in the last minutes.
Index("jobs_finished_idx", jobs.c.finished_at)
# Listing a tenant's jobs newest first (created_at, then job_id, descending), alone or with one
# filter: each reads one of these in the page's order and stops after the page.
Index("jobs_tenant_created_idx", jobs.c.tenant, jobs.c.created_at, jobs.c.job_id)
Index("jobs_tenant_status_idx", jobs.c.tenant, jobs.c.status, jobs.c.created_at, jobs.c.job_id)
Index(
    "jobs_tenant_model_idx", jobs.c.tenant, jobs.c.model_version, jobs.c.created_at, jobs.c.job_id
)
Index(
    "jobs_tenant_label_idx",
    jobs.c.tenant,
    jobs.c.result_label,
    jobs.c.created_at,
    jobs.c.job_id,
    postgresql_where=jobs.c.result_label.isnot(None),
)
Index(
    "jobs_tenant_batch_idx",
    jobs.c.tenant,
    jobs.c.batch_id,
    jobs.c.created_at,
    jobs.c.job_id,
    postgresql_where=jobs.c.batch_id.isnot(None),
)

# Where each projection has read the event log up to: a row per lane of each partition (the
# lane's name, eventlog.lanes; rows from before lanes are the default lane's). Written in the
# same transaction as the rows it covers, so a crash can neither skip nor repeat an event.
projector_checkpoints = Table(
    "projector_checkpoints",
    metadata,
    Column("name", Text, primary_key=True),
    Column("partition", Integer, primary_key=True, server_default="0"),
    Column("lane", Text, primary_key=True, server_default="interactive:default"),
    Column("last_entry_id", Text, nullable=False),
    Column("entries_read", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every entry of the event log, append-only, written by the projector in the same transaction as
# the rows it folds into, so the Redis stream can be trimmed without losing history. Stream ids
# compare as (ms, seq) numbers, not as text, hence the two bigint columns to order by; they are
# unique within one stream only, a lane (by name) of a partition.
events = Table(
    "events",
    metadata,
    Column("partition", Integer, primary_key=True, server_default="0"),
    Column("lane", Text, primary_key=True, server_default="interactive:default"),
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
Index(
    "events_position_idx",
    events.c.partition,
    events.c.lane,
    events.c.entry_ms,
    events.c.entry_seq,
    unique=True,
)
Index("events_job_idx", events.c.job_id, events.c.entry_ms, events.c.entry_seq)


# API keys (api/keys.py). Only a key's SHA-256 is kept: the key itself is shown once, when it is
# made. Revoked keys stay, for the record, with the time they stopped working.
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", Text, primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("key_hash", Text, nullable=False, unique=True),
    # The key's first and last characters, for people to tell keys apart in a listing.
    Column("hint", Text, nullable=False),
    # This key's own request rate (per second) and burst, within its tenant's; null: none.
    Column("requests_per_s", Float),
    Column("requests_burst", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
Index("api_keys_tenant_idx", api_keys.c.tenant)

# Each tenant's limits; a tenant without a row, or a null limit, has the settings' defaults.
tenants = Table(
    "tenants",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("requests_per_s", Float),
    Column("requests_burst", Integer),
    Column("jobs_per_s", Float),
    Column("jobs_burst", Integer),
    Column("max_queued", BigInteger),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Each tenant's webhook signing secret (readmodel.webhooksecrets), and during a rotation the one
# before it, valid until `previous_valid_until`. Kept as they are: signing needs the secret.
webhook_secrets = Table(
    "webhook_secrets",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("secret", Text, nullable=False),
    Column("previous_secret", Text),
    Column("previous_valid_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True)),
)
