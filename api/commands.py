"""`python -m api keys ...` and `python -m api tenants ...`: API keys and tenants' limits from
a shell, against DATABASE_URL (what /v1/admin does over HTTP)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from api.keys import KeyStore, Scope, parse_scopes, well_formed
from api.schemas import KeyBody, KeyRequest, LimitsBody
from api.settings import ApiSettings
from api.tenants import LIMIT_COLUMNS, TenantStore
from domain.tenants import DEFAULT_TENANT, is_tenant


def add_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="make, list and revoke API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="make a key; prints it once")
    create.add_argument("--tenant", required=True, type=_tenant)
    create.add_argument("--scopes", default="submit,read", help="comma-separated (submit,read)")
    create.add_argument("--name", default="")
    create.add_argument("--requests-per-s", type=float)
    create.add_argument("--requests-burst", type=int)
    listing = keys.add_parser("list", help="every key, without the keys themselves")
    listing.add_argument("--tenant", type=_tenant)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    dev = keys.add_parser(
        "dev", help="the development admin key in FILE: made (and written) unless FILE holds one"
    )
    dev.add_argument("--file", type=Path, required=True)

    tenants = commands.add_parser("tenants", help="tenants' limits").add_subparsers(
        dest="action", required=True
    )
    show = tenants.add_parser("show", help="a tenant's own limits and those in force")
    show.add_argument("tenant", type=_tenant)
    limits = tenants.add_parser("limits", help="set a tenant's limits (omitted: the default)")
    limits.add_argument("tenant", type=_tenant)
    for column in LIMIT_COLUMNS:
        kind = float if column.endswith("_per_s") else int  # bursts and max_queued
        limits.add_argument("--" + column.replace("_", "-"), type=kind)


def _tenant(value: str) -> str:
    if not is_tenant(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a tenant name (a-z, 0-9, _ and -)")
    return value


def run(args: argparse.Namespace) -> int:
    settings = ApiSettings()
    command: Callable[[AsyncEngine, ApiSettings, argparse.Namespace], Awaitable[int]]
    command = _COMMANDS[(args.command, args.action)]

    async def main() -> int:
        engine = create_async_engine(settings.database_url)
        try:
            return await command(engine, settings, args)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


async def _create(engine: AsyncEngine, _settings: ApiSettings, args: argparse.Namespace) -> int:
    try:
        request = KeyRequest(
            tenant=args.tenant,
            scopes=list(parse_scopes(args.scopes.split(","))),
            name=args.name,
            requests_per_s=args.requests_per_s,
            requests_burst=args.requests_burst,
        )
    except ValueError as exc:  # pydantic's ValidationError too
        print(exc, file=sys.stderr)
        return 2
    record, key = await KeyStore(engine).create(
        request.tenant,
        request.scopes,
        request.name,
        request.requests_per_s,
        request.requests_burst,
    )
    _print({**KeyBody.of(record).model_dump(mode="json"), "key": key})
    return 0


async def _list(engine: AsyncEngine, _settings: ApiSettings, args: argparse.Namespace) -> int:
    keys = await KeyStore(engine).listed(args.tenant)
    _print([KeyBody.of(key).model_dump(mode="json") for key in keys])
    return 0


async def _revoke(engine: AsyncEngine, _settings: ApiSettings, args: argparse.Namespace) -> int:
    record = await KeyStore(engine).revoke(args.key_id)
    if record is None:
        print(f"no key {args.key_id}", file=sys.stderr)
        return 1
    _print(KeyBody.of(record).model_dump(mode="json"))
    return 0


async def _dev(engine: AsyncEngine, _settings: ApiSettings, args: argparse.Namespace) -> int:
    """The file's key when it is still a live key of this database, else a new admin key."""
    path: Path = args.file
    store = KeyStore(engine)
    if path.exists():
        key = path.read_text(encoding="ascii").strip()
        if well_formed(key) and await store.find(key) is not None:
            print(key)
            return 0
    _record, key = await store.create(DEFAULT_TENANT, [Scope.ADMIN], "make run (development)")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n", encoding="ascii")
    path.chmod(0o600)
    print(key)
    return 0


async def _show(engine: AsyncEngine, settings: ApiSettings, args: argparse.Namespace) -> int:
    store = TenantStore(engine, settings)
    own = await store.own(args.tenant)
    effective = store.effective(own)
    _print({"tenant": args.tenant, "own": own, "effective": _as_dict(effective)})
    return 0


async def _limits(engine: AsyncEngine, settings: ApiSettings, args: argparse.Namespace) -> int:
    try:
        limits = LimitsBody.model_validate({c: getattr(args, c) for c in LIMIT_COLUMNS})
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    store = TenantStore(engine, settings)
    own = await store.set_own(args.tenant, limits.model_dump())
    _print({"tenant": args.tenant, "own": own, "effective": _as_dict(store.effective(own))})
    return 0


def _as_dict(limits: Any) -> dict[str, Any]:
    rates = {
        name: None if rate is None else {"per_s": rate.per_s, "burst": rate.burst}
        for name, rate in (("requests", limits.requests), ("jobs", limits.jobs))
    }
    return {**rates, "max_queued": limits.max_queued or None}


_COMMANDS: dict[
    tuple[str, str], Callable[[AsyncEngine, ApiSettings, argparse.Namespace], Awaitable[int]]
] = {
    ("keys", "create"): _create,
    ("keys", "list"): _list,
    ("keys", "revoke"): _revoke,
    ("keys", "dev"): _dev,
    ("tenants", "show"): _show,
    ("tenants", "limits"): _limits,
}
