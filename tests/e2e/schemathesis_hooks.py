"""Hooks for the schemathesis CLI run of test_openapi (SCHEMATHESIS_HOOKS names this file).

Batch files are JSON Lines, for which schemathesis has no serializer: it sends the text it
generates as it is, as for text/plain, and the API judges it line by line like any file.
"""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias(["application/x-ndjson", "application/jsonl"], "text/plain")
