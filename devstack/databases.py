"""PostgreSQL databases of their own for tests and benches, cloned from a template.

Cloning a migrated template is much faster than migrating every new database, and a database
per test or bench run keeps their rows apart on one server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from readmodel.migrations import upgrade

TEMPLATE_PREFIX = "inferflow_tmpl_"
FRESH_PREFIX = "inferflow_test_"


def admin(url: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the server's ``postgres`` database: CREATE/DROP DATABASE
    cannot run in a transaction, nor while connected to the database concerned."""
    target = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(target.render_as_string(hide_password=False), autocommit=True)


def database_url(url: str, name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the server of ``url``."""
    target = make_url(url).set(drivername="postgresql+psycopg", database=name)
    return target.render_as_string(hide_password=False)


def drop_database(url: str, name: str) -> None:
    with admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def migrated_template(url: str) -> Iterator[str]:
    """A new database with every migration applied; yields its name, drops it afterwards."""
    name = f"{TEMPLATE_PREFIX}{uuid.uuid4().hex[:8]}"
    with admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(database_url(url, name))
        yield name
    finally:
        drop_database(url, name)


@contextmanager
def fresh_database(url: str, template: str) -> Iterator[str]:
    """A new database cloned from ``template``; yields its URL, drops it afterwards."""
    name = f"{FRESH_PREFIX}{uuid.uuid4().hex[:12]}"
    with admin(url) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield database_url(url, name)
    finally:
        drop_database(url, name)
