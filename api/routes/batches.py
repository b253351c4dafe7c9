"""Batches as objects: /v1/batches (a JSON Lines file in) and /v1/batches/{batch_id} (its counts,
results and progress)."""

from __future__ import annotations

from fastapi import APIRouter

FILE_PATH = "/v1/batches"

router = APIRouter()
