"""A Celery reference for the bench: the seed's design, written small, run beside InferFlow.

`POST /v1/inference` inserts a row (status queued) in PostgreSQL and sends one Celery task;
the worker marks the row started, runs the same scikit-learn model as our consumers, and marks
it succeeded (or failed); `GET /v1/jobs/{id}` reads the row. A database write per state, one
task per job, Redis as the broker (its keys under a prefix of their own), PostgreSQL in a
database of its own. Nothing of InferFlow's roles is imported: only the model registry.
"""
