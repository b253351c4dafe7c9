"""`python -m api keys ...` and `python -m api tenants ...` against a real database, and what
the `api_keys` table keeps (a hash, never the key)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine, select

from api.keys import key_hash, well_formed
from devstack.roles import REPO_ROOT
from readmodel.tables import api_keys, tenants


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_are_made_listed_and_revoked(database_url: str, engine: Engine):
    made = run(database_url, "keys", "create", "--tenant", "acme", "--scopes", "submit,read")
    assert made.returncode == 0, made.stderr
    body = json.loads(made.stdout)
    key = body["key"]
    assert well_formed(key) and body["tenant"] == "acme" and body["scopes"] == ["read", "submit"]
    with engine.connect() as conn:
        (row,) = conn.execute(select(api_keys)).all()
    assert row.key_hash == key_hash(key)
    assert key not in " ".join(str(value) for value in row)  # only its hash is kept

    listed = run(database_url, "keys", "list", "--tenant", "acme")
    assert listed.returncode == 0 and key not in listed.stdout
    assert [k["key_id"] for k in json.loads(listed.stdout)] == [body["key_id"]]

    revoked = run(database_url, "keys", "revoke", body["key_id"])
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    assert run(database_url, "keys", "revoke", "key_000000000000").returncode == 1


def test_bad_arguments_are_refused_without_a_key(database_url: str, engine: Engine):
    assert run(database_url, "keys", "create", "--tenant", "Bad Name").returncode == 2
    unknown_scope = run(database_url, "keys", "create", "--tenant", "acme", "--scopes", "write")
    assert unknown_scope.returncode == 2 and "unknown scope" in unknown_scope.stderr
    with engine.connect() as conn:
        assert conn.execute(select(api_keys)).all() == []


def test_the_development_key_is_made_once_and_made_again_for_a_new_database(
    database_url: str, engine: Engine, tmp_path: Path
):
    path = tmp_path / "api-key"
    first = run(database_url, "keys", "dev", "--file", str(path))
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert well_formed(key) and path.read_text().strip() == key
    assert path.stat().st_mode & 0o777 == 0o600
    again = run(database_url, "keys", "dev", "--file", str(path))
    assert again.stdout.strip() == key
    with engine.begin() as conn:
        conn.execute(api_keys.delete())  # as a fresh database would be
    renewed = run(database_url, "keys", "dev", "--file", str(path))
    assert renewed.stdout.strip() != key and path.read_text().strip() == renewed.stdout.strip()
    with engine.connect() as conn:
        (row,) = conn.execute(select(api_keys)).all()
    assert row.tenant == "default" and row.scopes == ["admin"]


def test_tenant_limits_from_the_shell(database_url: str, engine: Engine):
    set_ = run(database_url, "tenants", "limits", "acme", "--requests-per-s", "20")
    assert set_.returncode == 0, set_.stderr
    shown = json.loads(run(database_url, "tenants", "show", "acme").stdout)
    assert shown["own"]["requests_per_s"] == 20
    assert shown["effective"]["requests"] == {"per_s": 20, "burst": 20}
    assert shown["effective"]["jobs"] is None
    with engine.connect() as conn:
        assert conn.execute(select(tenants.c.requests_per_s)).scalar_one() == 20
    assert run(database_url, "tenants", "limits", "acme", "--jobs-burst", "0").returncode == 2
