"""Running a JSON Lines file of any size as batches, resumable: `inferflow batch`.

The file is cut into parts of `part_lines` lines (not counting blank ones), the same parts on
every run of the same file. Each part is sent as a batch file (POST /v1/batches) with an
Idempotency-Key made of the file's SHA-256 and the part's number, so sending a part again, by a
retry or by a rerun after an interruption, makes no job twice: the server answers with the jobs
it has. A state file beside the output (OUTPUT.state) records which parts were sent and which
were written out, so a rerun picks up where the last one stopped; without it a rerun sends every
part again, still without a duplicate.

The output has one line per line of the input (blank lines aside), in the input's order, each
with its `custom_id` (`line-<n>` for a line without one, n its line number) and its job's
outcome, or `status` `rejected` with the reason when the line made no job."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from inferflow.calls import Deadline
from inferflow.client import Client
from inferflow.errors import ConnectionFailed, Invalid
from inferflow.progress import Progress
from inferflow.types import ResultLine

PART_LINES = 10_000
STATE_VERSION = 1
PROBLEM = "urn:inferflow:problem:"
POLL_S = 0.5
RESULT_TRIES = 5
# Parts whose batches' progress is read while waiting for the first of them.
LOOKAHEAD = 8


@dataclass(frozen=True)
class Line:
    """One line of the input: `body` is what is sent, None when the client refused it
    (`error`, a problem's type and detail)."""

    number: int
    custom_id: str
    body: bytes | None
    error: dict[str, str] | None = None


@dataclass
class Summary:
    lines: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    rejected: int = 0

    @property
    def ok(self) -> bool:
        return self.succeeded == self.lines

    def count(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)


def read_lines(path: Path) -> Iterator[Line]:
    """The file's lines that are not blank, each with its custom_id, or refused: not a JSON
    object, or a custom_id seen on an earlier line."""
    seen: set[str] = set()
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            yield _line(number, raw, seen)


def _line(number: int, raw: bytes, seen: set[str]) -> Line:
    fallback = f"line-{number}"
    try:
        item = json.loads(raw)
    except ValueError as exc:
        return Line(number, fallback, None, _problem("malformed-json", f"not JSON: {exc}"))
    if not isinstance(item, dict):
        return Line(number, fallback, None, _problem("validation-error", "not a JSON object"))
    custom_id = item.get("custom_id")
    if custom_id is None:
        custom_id = item["custom_id"] = fallback
        raw = json.dumps(item, ensure_ascii=False).encode()
    if not isinstance(custom_id, str):
        return Line(number, fallback, None, _problem("validation-error", "custom_id: not text"))
    if custom_id in seen:
        detail = f"custom_id {custom_id!r} is used by an earlier line"
        return Line(number, custom_id, None, _problem("duplicate-custom-id", detail))
    seen.add(custom_id)
    return Line(number, custom_id, raw)


def _problem(name: str, detail: str) -> dict[str, str]:
    return {"type": PROBLEM + name, "detail": detail}


def parts(path: Path, part_lines: int) -> Iterator[list[Line]]:
    part: list[Line] = []
    for line in read_lines(path):
        part.append(line)
        if len(part) == part_lines:
            yield part
            part = []
    if part:
        yield part


def fingerprint(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines that are not blank."""
    digest = hashlib.sha256()
    lines = 0
    with path.open("rb") as source:
        for raw in source:
            digest.update(raw)
            lines += bool(raw.strip())
    return digest.hexdigest(), lines


@dataclass
class State:
    """What a run did so far, saved after every step (atomically: a kill leaves the old or the
    new state, never half of one)."""

    file_sha256: str
    part_lines: int
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    written: int = 0
    output_bytes: int = 0
    summary: dict[str, int] = field(default_factory=dict)
    version: int = STATE_VERSION

    @classmethod
    def load(cls, path: Path) -> State | None:
        try:
            state = cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        return state if state.version == STATE_VERSION else None

    def save(self, path: Path) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(asdict(self)))
        os.replace(temporary, path)


class BatchRun:
    def __init__(
        self,
        client: Client,
        source: Path,
        output: Path,
        part_lines: int = PART_LINES,
        deadline: Deadline | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.source = source
        self.output = output
        self.state_path = output.with_name(output.name + ".state")
        self.deadline = deadline
        sha, self.total = fingerprint(source)
        state = State.load(self.state_path)
        self.resumed = state is not None and state.file_sha256 == sha
        self.state = state if state is not None and self.resumed else State(sha, part_lines)
        self.progress = progress or Progress(self.total, enabled=False)
        self.progress.total = self.total
        self.summary = Summary(**self.state.summary)

    @property
    def part_lines(self) -> int:
        return self.state.part_lines

    def run(self) -> Summary:
        """Send what was not sent, wait, and write what was not written; the state file is
        removed once the output is whole."""
        self.send()
        self.write()
        self.state_path.unlink(missing_ok=True)
        return self.summary

    def key(self, index: int) -> str:
        return f"inferflow-batch:{self.state.file_sha256[:40]}:{self.part_lines}:{index}"

    # ------------------------------------------------------------------------- sending

    def send(self) -> None:
        sent = 0
        for index, part in enumerate(parts(self.source, self.part_lines)):
            sent += len(part)
            if str(index) not in self.state.parts:
                self.state.parts[str(index)] = self._send_part(index, part)
                self.state.save(self.state_path)
            self.progress.show("sending", sent, 0)
        self.progress.restart(self.summary.lines)

    def _send_part(self, index: int, part: list[Line]) -> dict[str, Any]:
        sendable = [line for line in part if line.body is not None]
        if not sendable:
            return {"batch_id": None, "bad": {}}
        body = b"\n".join(line.body for line in sendable if line.body is not None) + b"\n"
        try:
            accepted = self.client.submit_file(body, self.key(index), self.deadline)
        except Invalid as exc:
            if exc.problem.name != "no-valid-lines":
                raise
            bad_lines = exc.problem.extra.get("bad_lines", [])
            bad = {b["line"]: b["error"] for b in bad_lines}
            batch_id = exc.problem.extra.get("batch_id")
        else:
            bad = {
                b.line: {"type": b.error.type, "detail": b.error.detail} for b in accepted.bad_lines
            }
            batch_id = accepted.batch_id
        # The server numbers the lines of the part it was sent; the output, those of the file.
        mapped = {str(sendable[n - 1].number): problem for n, problem in bad.items()}
        return {"batch_id": batch_id, "bad": mapped}

    # ------------------------------------------------------------------------- writing

    def write(self) -> None:
        if not (self.resumed and self.output.exists()):
            self.state.written, self.state.output_bytes = 0, 0
            self.summary = Summary()
        with self.output.open("r+b" if self.state.written else "w+b") as sink:
            sink.seek(self.state.output_bytes)
            sink.truncate()
            for index, part in enumerate(parts(self.source, self.part_lines)):
                if index < self.state.written:
                    continue
                record = self.state.parts[str(index)]
                results = self._finished(index)
                for line in part:
                    sink.write(self._outcome(line, record["bad"], results))
                sink.flush()
                os.fsync(sink.fileno())
                self.state.written = index + 1
                self.state.output_bytes = sink.tell()
                self.state.summary = asdict(self.summary)
                self.state.save(self.state_path)
        self.progress.show("done", self.summary.lines, self._failed(), force=True)
        self.progress.finish()

    def _finished(self, index: int) -> dict[str, ResultLine]:
        """The results of part `index`'s batch once every job of it has ended; meanwhile the
        progress of it and of the next few parts' batches (later parts run alongside)."""
        batch_id = self.state.parts[str(index)]["batch_id"]
        if batch_id is None:
            return {}
        while True:
            ahead = [
                self.state.parts.get(str(i), {}).get("batch_id")
                for i in range(index, index + LOOKAHEAD)
            ]
            batches = [self.client.batch(b) for b in ahead if b is not None]
            ended = self.summary.lines + sum(b.counts.ended for b in batches)
            failed = self._failed() + sum(b.counts.failed + b.counts.cancelled for b in batches)
            self.progress.show("running", ended, failed)
            if batches[0].done:
                return self._results(batch_id)
            time.sleep(POLL_S)

    def _results(self, batch_id: str) -> dict[str, ResultLine]:
        # A results stream cut short is an error, not the end: read it again, whole.
        tries = 1
        while True:
            try:
                return {r.custom_id or r.job_id: r for r in self.client.batch_results(batch_id)}
            except (httpx.TransportError, ConnectionFailed):
                if tries == RESULT_TRIES:
                    raise
                tries += 1

    def _outcome(self, line: Line, bad: dict[str, Any], results: dict[str, ResultLine]) -> bytes:
        found = results.get(line.custom_id) if line.body is not None else None
        problem = line.error or bad.get(str(line.number))
        if found is not None:
            out = {
                "custom_id": line.custom_id,
                "line": line.number,
                "job_id": found.job_id,
                "status": found.status,
                "result": asdict(found.result) if found.result else None,
                "error": found.error,
                "error_type": found.error_type,
                "cancel_reason": found.cancel_reason,
            }
        else:
            problem = problem or _problem("not-accepted", "the server accepted no job for it")
            out = {
                "custom_id": line.custom_id,
                "line": line.number,
                "job_id": None,
                "status": "rejected",
                "result": None,
                "error": problem.get("detail"),
                "error_type": problem.get("type"),
                "cancel_reason": None,
            }
        self.summary.lines += 1
        self.summary.count(str(out["status"]))
        return json.dumps(out, ensure_ascii=False).encode() + b"\n"

    def _failed(self) -> int:
        return self.summary.failed + self.summary.cancelled + self.summary.rejected
