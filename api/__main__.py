"""`python -m api`: serve the HTTP API with uvicorn."""

from __future__ import annotations

import os
import tempfile

import uvicorn

from api.settings import ApiSettings


def main() -> None:
    settings = ApiSettings()
    if settings.api_workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several worker processes must pool their metrics to report true totals.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="inferflow-metrics-")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
