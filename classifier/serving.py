"""Which version serves submissions that name none, and which versions are retired.

Stored as one small JSON file in the models directory, ``_serving.json``::

    {"default": "intents-v2", "retired": {"intents-v1": "intents-v2"}}

Why a file there and not Redis: the models directory is already what every API process and
consumer shares (they read the models from it), the classifier package may not reach the event
log (an import layer), and the trainer and publisher already write it. The file is replaced with
``os.replace``, so a reader sees the old state or the new one; readers stat it on every read and
parse it again only when its inode, size or mtime changed, so a change is seen by every process
at its next submission, without restart, for the cost of one stat. Its name starts with "_",
outside the version pattern, so the registry never lists it as a model.

Retirement only concerns new submissions (the API refuses them, naming the replacement); jobs
already queued for a retired version still run, because consumers never consult this file.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from classifier.errors import ModelRetiredError, ServingChangeError, UnknownModelVersionError
from classifier.files import atomic_write

log = logging.getLogger(__name__)

STATE_FILE = "_serving.json"
LOCK_FILE = "._serving.lock"


@dataclass(frozen=True)
class ServingState:
    # None: the deployment's DEFAULT_MODEL_VERSION.
    default: str | None = None
    # retired version -> its replacement
    retired: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        body = {"default": self.default, "retired": dict(sorted(self.retired.items()))}
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ServingState:
        raw = json.loads(text)
        default = raw.get("default")
        retired = {str(k): str(v) for k, v in (raw.get("retired") or {}).items()}
        return cls(default=None if default is None else str(default), retired=retired)

    def default_version(self, configured: str) -> str:
        """The version a submission without one gets: the stored default, else `configured`;
        a retired default gives way to its replacement."""
        return self.replacement(self.default or configured)

    def replacement(self, version: str) -> str:
        """`version` itself when it is not retired, else the end of its replacements."""
        seen = {version}
        while version in self.retired:
            version = self.retired[version]
            if version in seen:  # a cycle can only come from a hand-edited file
                break
            seen.add(version)
        return version

    def check_submission(self, version: str) -> None:
        if version in self.retired:
            raise ModelRetiredError(version, self.replacement(version))


class ServingStore:
    """Reads and changes a models directory's serving state; safe to share between threads."""

    def __init__(self, models_dir: Path) -> None:
        self.path = Path(models_dir) / STATE_FILE
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._state = ServingState()

    def current(self) -> ServingState:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return ServingState()
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key != self._seen:
                self._seen = key
                try:
                    self._state = ServingState.from_json(self.path.read_text("utf-8"))
                except (OSError, ValueError, AttributeError, TypeError) as exc:
                    # Only a hand edit can break it (we replace it whole): keep serving as before
                    # rather than failing every submission.
                    log.error("%s unreadable, keeping the previous state: %s", self.path, exc)
            return self._state

    def set_default(self, version: str, exists: Callable[[str], bool]) -> ServingState:
        def change(state: ServingState) -> ServingState:
            _require(version, exists)
            if version in state.retired:
                raise ServingChangeError(f"{version!r} is retired; it cannot be the default")
            return ServingState(default=version, retired=state.retired)

        return self._change(change)

    def retire(self, version: str, replacement: str, exists: Callable[[str], bool]) -> ServingState:
        def change(state: ServingState) -> ServingState:
            _require(version, exists)
            _require(replacement, exists)
            if state.replacement(replacement) != replacement or replacement == version:
                raise ServingChangeError(f"the replacement {replacement!r} is itself retired")
            retired = {**state.retired, version: replacement}
            # Submissions without a version must keep a live default.
            default = replacement if state.default == version else state.default
            return ServingState(default=default, retired=retired)

        return self._change(change)

    def restore(self, version: str) -> ServingState:
        def change(state: ServingState) -> ServingState:
            retired = {k: v for k, v in state.retired.items() if k != version}
            return ServingState(default=state.default, retired=retired)

        return self._change(change)

    def _change(self, change: Callable[[ServingState], ServingState]) -> ServingState:
        with self._exclusive():
            self._seen = None
            new = change(self.current())
            atomic_write(self.path, new.to_json().encode("utf-8"))
            return new

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        # Two operators changing the state at once would otherwise each drop the other's change.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def _require(version: str, exists: Callable[[str], bool]) -> None:
    if not exists(version):
        raise UnknownModelVersionError(version)
