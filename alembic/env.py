"""Alembic environment: migrations run against DATABASE_URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from readmodel.tables import metadata
from runtime.settings import CommonSettings


def _url() -> str:
    configured = context.config.attributes.get("database_url")
    return configured or CommonSettings().database_url


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
