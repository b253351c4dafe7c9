"""What the command lines that write a models directory share: its option and their exits."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from classifier.registry import ModelManifest


class TrainingInputError(ValueError):
    """Input the trainer or publisher refuses; the CLI reports it and exits with code 2."""


def add_models_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=Path(os.environ.get("MODELS_DIR", "models")),
        help="defaults to $MODELS_DIR, else ./models",
    )


def add_target(parser: argparse.ArgumentParser) -> None:
    """Where a model is published, and whether it may replace a version of the same name."""
    add_models_dir(parser)
    parser.add_argument("--force", action="store_true", help="replace an existing version")


def run_publishing(models_dir: Path, make: Callable[[], ModelManifest]) -> int:
    """Exit code 0 once `make` published a model, 2 when it refused its input."""
    try:
        manifest = make()
    except TrainingInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published {manifest.version} to {models_dir} (sha256 {manifest.sha256[:12]})")
    return 0
