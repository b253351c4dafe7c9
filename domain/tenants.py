"""Tenants: who a job belongs to.

A tenant is a short lowercase name. Every job carries its tenant from its `JobRequested` on, and
nothing of one tenant is visible to another. Jobs of logs written before tenants existed belong
to the default tenant, as do all jobs of a deployment that runs without API keys.
"""

from __future__ import annotations

import re

DEFAULT_TENANT = "default"
# Safe in Redis key names, hash tags, metric labels and URLs without escaping.
TENANT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
_TENANT = re.compile(TENANT_PATTERN)


def is_tenant(name: str) -> bool:
    return _TENANT.fullmatch(name) is not None
