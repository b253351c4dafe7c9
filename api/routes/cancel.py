"""Stopping work: POST /v1/jobs/{job_id}/cancel and POST /v1/batches/{batch_id}/cancel."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
