"""Where the Celery reference finds its broker, database and model (the environment, set by
bench.celeryref.service for both of its processes)."""

from __future__ import annotations

import os

BROKER_URL = "CELERYREF_BROKER_URL"
KEY_PREFIX = "CELERYREF_KEY_PREFIX"
DATABASE_URL = "CELERYREF_DATABASE_URL"  # a libpq URL (psycopg), not SQLAlchemy's
MODELS_DIR = "CELERYREF_MODELS_DIR"
MODEL_VERSION = "CELERYREF_MODEL_VERSION"

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id uuid PRIMARY KEY,
    status text NOT NULL,
    text text NOT NULL,
    model_version text NOT NULL,
    result_label text,
    result_score double precision,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz
)
"""


def env(name: str) -> str:
    return os.environ[name]
