"""Apply the Alembic migrations from code (start-up scripts and test fixtures)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

_ROOT = Path(__file__).resolve().parent.parent


def upgrade(database_url: str, revision: str = "head") -> None:
    config = Config(str(_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.upgrade(config, revision)


def downgrade(database_url: str, revision: str) -> None:
    config = Config(str(_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    command.downgrade(config, revision)
