"""Process-wide logging set-up, shared by the roles."""

from __future__ import annotations

import logging


def configure(level: str, role: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {role} %(name)s: %(message)s",
    )
