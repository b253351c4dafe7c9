"""The Celery app and its one task: a job's run, with a database write per state.

Run with `celery -A bench.celeryref.worker worker`. Each worker process opens its own
PostgreSQL connection and loads the model once, on its first task (after the fork).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import psycopg
from celery import Celery

from bench.celeryref import settings
from classifier.registry import Classifier, ModelRegistry

celery = Celery("celeryref", broker=settings.env(settings.BROKER_URL))
celery.conf.update(
    broker_connection_retry_on_startup=True,
    # The seed's: its own broker keys (a prefix here, so that it shares our Redis), no result
    # backend (the state is in PostgreSQL), a task acknowledged once it ran (none lost to a
    # worker that dies), time limits.
    broker_transport_options={"global_keyprefix": settings.env(settings.KEY_PREFIX)},
    task_ignore_result=True,
    task_acks_late=True,
    task_soft_time_limit=10,
    task_time_limit=20,
    worker_hijack_root_logger=False,
)


@cache
def _connection() -> psycopg.Connection[Any]:
    return psycopg.connect(settings.env(settings.DATABASE_URL), autocommit=True)


@cache
def _model(version: str) -> Classifier:
    return ModelRegistry(Path(settings.env(settings.MODELS_DIR))).load(version)


@celery.task(  # type: ignore[untyped-decorator]
    name="celeryref.infer",
    bind=True,
    autoretry_for=(psycopg.OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def infer(self: Any, job_id: str) -> None:
    conn = _connection()
    row = conn.execute(
        "UPDATE jobs SET status = 'started', started_at = now(), attempts = attempts + 1"
        " WHERE job_id = %s RETURNING text, model_version",
        (job_id,),
    ).fetchone()
    if row is None:
        return  # not ours (a stale task of an earlier run)
    text, version = row
    try:
        prediction = _model(version).predict([text])[0]
    except Exception as exc:
        conn.execute(
            "UPDATE jobs SET status = 'failed', error = %s, finished_at = now() WHERE job_id = %s",
            (repr(exc)[:500], job_id),
        )
        return
    conn.execute(
        "UPDATE jobs SET status = 'succeeded', result_label = %s, result_score = %s,"
        " finished_at = now() WHERE job_id = %s",
        (prediction.label, prediction.score, job_id),
    )
