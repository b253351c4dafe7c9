"""Pure domain model of InferFlow: events, the job state machine and its fold, and errors.

Nothing here talks to Redis, PostgreSQL, HTTP or a model file; everything is testable without
fixtures.
"""
