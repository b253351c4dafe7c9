"""Which model serves: ``python -m classifier COMMAND [--models-dir DIR]``

    list                          every version, its labels and accuracy; the default marked
    default VERSION               submissions without model_version get VERSION from now on
    retire VERSION --replacement NEW
                                  new submissions for VERSION are refused, naming NEW; jobs
                                  already queued for it still run
    restore VERSION               VERSION takes submissions again

Running API processes and consumers see a change at their next request, without restart.
Exit code 2 means the change was refused (unknown version, retired replacement).
"""

from __future__ import annotations

import argparse
import os
import sys

from classifier.cli import add_models_dir
from classifier.errors import ServingChangeError, UnknownModelVersionError
from classifier.registry import ModelRegistry
from classifier.serving import ServingState


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m classifier",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_models_dir(parser)
    parser.add_argument(
        "--configured-default",
        default=os.environ.get("DEFAULT_MODEL_VERSION", "spam-tfidf-lr-v1"),
        help="the deployment's DEFAULT_MODEL_VERSION, used until a default is set",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list")
    commands.add_parser("default").add_argument("version")
    retire = commands.add_parser("retire")
    retire.add_argument("version")
    retire.add_argument("--replacement", required=True)
    commands.add_parser("restore").add_argument("version")
    return parser.parse_args(argv)


def _listing(registry: ModelRegistry, state: ServingState, configured: str) -> str:
    default = state.default_version(configured)
    lines = []
    for version in registry.versions():
        manifest = registry.manifest(version)
        marks = " (default)" if version == default else ""
        if version in state.retired:
            marks += f" (retired: use {state.replacement(version)})"
        labels = ",".join(manifest.labels)
        lines.append(
            f"{version}{marks}  {manifest.kind}  accuracy {manifest.accuracy:.3f}  {labels}"
        )
    return "\n".join(lines) + "\n" if lines else "no models\n"


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    registry = ModelRegistry(args.models_dir)
    store = registry.serving
    try:
        if args.command == "default":
            store.set_default(args.version, registry.has)
        elif args.command == "retire":
            store.retire(args.version, args.replacement, registry.has)
        elif args.command == "restore":
            store.restore(args.version)
    except (UnknownModelVersionError, ServingChangeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(_listing(registry, store.current(), args.configured_default))
    return 0


if __name__ == "__main__":
    sys.exit(main())
