"""`python -m api`: serve the HTTP API; `python -m api openapi`: write its OpenAPI description;
`python -m api keys ...` and `python -m api tenants ...`: API keys and tenants' limits."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import uvicorn

from api import commands as commands_module
from api.settings import ApiSettings
from runtime import logs

DEFAULT_SPEC_PATH = Path("docs/openapi.json")


def _pool_metrics() -> None:
    """Several worker processes must pool their metrics to report true totals.

    Files left by an earlier run would add its counts to ours, so a given directory is emptied.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="inferflow-metrics-")
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in Path(directory).glob("*.db"):
        stale.unlink()


def serve() -> None:
    settings = ApiSettings()
    logs.configure(settings.log_level, "api", settings.log_format)
    if settings.api_workers > 1:
        _pool_metrics()
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        workers=settings.api_workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,  # uvicorn's loggers propagate to ours: one format for every line
        timeout_graceful_shutdown=10,
    )


def write_openapi(output: Path) -> None:
    from api.app import create_app
    from api.openapi import default_settings, render

    # Built from defaults, not the environment, so every machine writes the same file.
    app = create_app(default_settings())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(app.openapi()), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    spec = commands.add_parser("openapi", help="write the OpenAPI description (default settings)")
    spec.add_argument("--output", type=Path, default=DEFAULT_SPEC_PATH)
    commands_module.add_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "openapi":
        write_openapi(args.output)
    elif args.command in ("keys", "tenants"):
        sys.exit(commands_module.run(args))
    else:
        serve()


if __name__ == "__main__":
    main()
