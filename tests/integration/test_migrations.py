"""Migrations on a database that holds a projection from before them: what was there becomes
partition 0 (0003) and the default tenant's (0004), nothing is lost, and each downgrade gives
the old shape back."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from devstack.databases import fresh_database
from readmodel.migrations import downgrade, upgrade


def test_the_partitions_migration_keeps_the_old_projection_as_partition_0(postgres_url):
    with fresh_database(postgres_url, "template1") as url:
        upgrade(url, "0002")
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO projector_checkpoints VALUES ('jobs', '5-0', 5, now());"
                        "INSERT INTO events (entry_id, entry_ms, entry_seq, fields)"
                        " VALUES ('5-0', 5, 0, '{}')"
                    )
                )
            upgrade(url)
            with engine.begin() as conn:
                checkpoint = conn.execute(
                    text("SELECT partition, last_entry_id FROM projector_checkpoints")
                ).one()
                archived = conn.execute(text("SELECT partition, entry_id FROM events")).one()
                assert tuple(checkpoint) == (0, "5-0") and tuple(archived) == (0, "5-0")
                # Entry ids are unique within a partition only.
                conn.execute(
                    text(
                        "INSERT INTO projector_checkpoints VALUES ('jobs', '5-0', 5, now(), 1);"
                        "INSERT INTO events (partition, entry_id, entry_ms, entry_seq, fields)"
                        " VALUES (1, '5-0', 5, 0, '{}')"
                    )
                )
            downgrade(url, "0002")
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT name, last_entry_id FROM projector_checkpoints"))
                assert [tuple(r) for r in rows] == [("jobs", "5-0")]
                assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 1
        finally:
            engine.dispose()


def test_the_tenants_migration_makes_every_projected_job_the_default_tenants(postgres_url):
    with fresh_database(postgres_url, "template1") as url:
        upgrade(url, "0003")
        engine = create_engine(url)
        job_id = "01a2222c-2f5b-772f-b08b-c988cdc0bb63"
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO jobs (job_id, status, created_at, updated_at, last_entry_id)"
                        f" VALUES ('{job_id}', 'queued', now(), now(), '1-0')"
                    )
                )
            upgrade(url)
            with engine.begin() as conn:
                assert conn.execute(text("SELECT tenant FROM jobs")).scalar_one() == "default"
                conn.execute(
                    text(
                        "INSERT INTO api_keys (key_id, tenant, scopes, key_hash, hint, created_at)"
                        " VALUES ('key_1', 'acme', '{read}', 'h', 'ifk_...', now());"
                        "INSERT INTO tenants (tenant, requests_per_s, updated_at)"
                        " VALUES ('acme', 5, now())"
                    )
                )
            downgrade(url, "0003")
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 1
                tables = conn.execute(
                    text(
                        "SELECT count(*) FROM pg_tables WHERE tablename IN ('api_keys', 'tenants')"
                    )
                ).scalar_one()
                assert tables == 0
        finally:
            engine.dispose()


def test_the_lanes_migration_makes_what_was_projected_the_default_lanes(postgres_url):
    with fresh_database(postgres_url, "template1") as url:
        upgrade(url, "0004")
        engine = create_engine(url)
        job_id = "01a2222c-2f5b-772f-b08b-c988cdc0bb63"
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO projector_checkpoints VALUES ('jobs', '5-0', 5, now(), 1);"
                        "INSERT INTO events (partition, entry_id, entry_ms, entry_seq, fields)"
                        " VALUES (1, '5-0', 5, 0, '{}');"
                        "INSERT INTO jobs (job_id, status, created_at, updated_at, last_entry_id)"
                        f" VALUES ('{job_id}', 'queued', now(), now(), '5-0')"
                    )
                )
            upgrade(url, "0005")
            with engine.begin() as conn:
                checkpoint = conn.execute(
                    text("SELECT partition, lane, last_entry_id FROM projector_checkpoints")
                ).one()
                archived = conn.execute(text("SELECT partition, lane, entry_id FROM events")).one()
                assert tuple(checkpoint) == (1, "interactive:default", "5-0")
                assert tuple(archived) == (1, "interactive:default", "5-0")
                assert conn.execute(text("SELECT lane FROM jobs")).scalar_one() == "interactive"
                # Entry ids are unique within a lane of a partition only.
                conn.execute(
                    text(
                        "INSERT INTO projector_checkpoints"
                        " (name, partition, lane, last_entry_id, entries_read, updated_at)"
                        " VALUES ('jobs', 1, 'bulk:acme', '5-0', 5, now());"
                        "INSERT INTO events"
                        " (partition, lane, entry_id, entry_ms, entry_seq, fields)"
                        " VALUES (1, 'bulk:acme', '5-0', 5, 0, '{}')"
                    )
                )
                indexes = conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE indexname = 'events_position_idx'")
                ).scalar_one()
                assert "(partition, lane, entry_ms, entry_seq)" in indexes
            downgrade(url, "0004")
            with engine.connect() as conn:
                rows = conn.execute(
                    text("SELECT partition, name, last_entry_id FROM projector_checkpoints")
                )
                assert [tuple(r) for r in rows] == [(1, "jobs", "5-0")]
                archived = conn.execute(text("SELECT partition, entry_id FROM events")).all()
                assert [tuple(r) for r in archived] == [(1, "5-0")]
                assert conn.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 1
                columns = conn.execute(
                    text(
                        "SELECT count(*) FROM information_schema.columns"
                        " WHERE column_name = 'lane'"
                        " AND table_name IN ('jobs', 'events', 'projector_checkpoints')"
                    )
                ).scalar_one()
                assert columns == 0
            upgrade(url)  # and up again
        finally:
            engine.dispose()


def test_the_job_control_migration_adds_cancelled_and_a_downgrade_reads_it_as_failed(
    postgres_url,
):
    with fresh_database(postgres_url, "template1") as url:
        upgrade(url, "0005")
        engine = create_engine(url)
        job_id = "01a2222c-2f5b-772f-b08b-c988cdc0bb63"
        try:
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO jobs (job_id, status, created_at, updated_at, last_entry_id)"
                        f" VALUES ('{job_id}', 'queued', now(), now(), '5-0')"
                    )
                )
            upgrade(url, "0006")
            with engine.begin() as conn:
                row = conn.execute(text("SELECT batch_id, cancel_reason FROM jobs")).one()
                assert tuple(row) == (None, None)
                conn.execute(
                    text(
                        "UPDATE jobs SET status = 'cancelled', cancel_reason = 'requested',"
                        " batch_id = 'b1'"
                    )
                )
                indexes = {
                    name
                    for (name,) in conn.execute(
                        text("SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'")
                    )
                }
                assert {"jobs_tenant_created_idx", "jobs_tenant_batch_idx"} <= indexes
            downgrade(url, "0005")
            with engine.connect() as conn:
                row = conn.execute(text("SELECT status, error FROM jobs")).one()
                assert tuple(row) == ("failed", "cancelled: requested")
        finally:
            engine.dispose()


def test_the_webhook_secrets_migration_adds_its_table_and_its_downgrade_removes_it(postgres_url):
    with fresh_database(postgres_url, "template1") as url:
        upgrade(url, "0006")
        engine = create_engine(url)
        count = "SELECT count(*) FROM pg_tables WHERE tablename = 'webhook_secrets'"
        try:
            upgrade(url)
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO webhook_secrets (tenant, secret, created_at)"
                        " VALUES ('acme', 'whsec_AAAA', now())"
                    )
                )
                assert conn.execute(text(count)).scalar_one() == 1
            downgrade(url, "0006")
            with engine.connect() as conn:
                assert conn.execute(text(count)).scalar_one() == 0
            upgrade(url)  # and up again, as a rollback that is undone
        finally:
            engine.dispose()
