"""Writing files of a models directory so that a reader sees the old file or the new, never part."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target: Path, payload: bytes) -> None:
    # Hidden ".tmp" names never match the registry's "*.json" listing.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; services may run as another user and must read the model.
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
