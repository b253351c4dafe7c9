"""Serving a role's Prometheus metrics on its own port."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(port: int) -> None:
    """Serve /metrics on `port` in a background thread; 0 means off."""
    if port == 0:
        return
    try:
        start_http_server(port)
    except OSError as exc:
        # Metrics are not worth stopping the work for: say so loudly and go on without them.
        log.error("metrics not served", extra={"port": port, "error": str(exc)})
        return
    log.info("metrics served", extra={"port": port})
