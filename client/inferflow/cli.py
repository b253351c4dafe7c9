"""The `inferflow` command: the API from a shell, readable tables or `--json` for scripts.

Exit codes (client/README.md lists them too):
  0  done; every job succeeded (submit --wait, batch)
  1  a job failed or was cancelled (submit/get --wait), or some lines of a batch did not succeed
  2  usage error (also a URL that is not http(s))
  3  the key was refused (401) or lacks the scope (403)
  4  no such job or batch (404)
  5  the service was unavailable or rate limited, still after the retries
  6  the request was refused otherwise (400, 409, 410, 413, 422, ...)
  7  a wait ran out before the job ended
  130 interrupted (Ctrl-C); `inferflow batch` resumes when run again
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import httpx

from inferflow import errors
from inferflow.batchfile import PART_LINES, BatchRun
from inferflow.client import Client
from inferflow.progress import Progress
from inferflow.retrying import RetryPolicy
from inferflow.types import Event, Job

OK, FAILED, USAGE, AUTH, NOT_FOUND, UNAVAILABLE, REFUSED, TIMED_OUT = range(8)
INTERRUPTED = 130

JOB_COLUMNS = {"job_id": 36, "status": 9, "label": 6, "score": 6, "created_at": 27, "custom_id": 0}
EVENT_COLUMNS = {"occurred_at": 27, "type": 16, "consumer": 12, "attempt": 7, "entry_id": 0}

_EXIT_OF: list[tuple[type[Exception], int]] = [
    (errors.Unauthorized, AUTH),
    (errors.Forbidden, AUTH),
    (errors.NotFound, NOT_FOUND),
    (errors.RateLimited, UNAVAILABLE),
    (errors.Unavailable, UNAVAILABLE),
    (errors.ServerError, UNAVAILABLE),
    (errors.ConnectionFailed, UNAVAILABLE),
    (errors.ProblemError, REFUSED),
]


_DEFAULTS = {"url": None, "api_key": None, "json": False, "timeout": 30.0, "retries": 8}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Not parser defaults: the common options' actions are shared by every command's parser,
    # and a default set on one would override what was given before the command.
    for name, value in _DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    try:
        retry = RetryPolicy(max_retries=max(0, args.retries))
        with Client(args.url, args.api_key, timeout=args.timeout, retry=retry) as client:
            code: int = args.run(client, args, sys.stdout)
            return code
    except KeyboardInterrupt:
        again = "; the same command resumes" if args.command == "batch" else ""
        print(f"interrupted{again}", file=sys.stderr)
        return INTERRUPTED
    except errors.InferFlowError as exc:
        print(f"inferflow: {exc}", file=sys.stderr)
        return next((code for kind, code in _EXIT_OF if isinstance(exc, kind)), REFUSED)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        print(f"inferflow: bad --url / INFERFLOW_URL: {exc}", file=sys.stderr)
        return USAGE
    except BrokenPipeError:
        # The reader went away (`inferflow jobs | head`): nothing is wrong here.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: the options may come before or after the command, the later one winning.
    common.add_argument("--url", default=argparse.SUPPRESS, help="API base URL ($INFERFLOW_URL)")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="($INFERFLOW_API_KEY)")
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="JSON output (one object per line) instead of a table",
    )
    common.add_argument(
        "--retries",
        type=int,
        default=argparse.SUPPRESS,
        help="retries of a 429, 503 or broken connection (default 8)",
    )
    common.add_argument(
        "--timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds to wait for an answer (default 30)",
    )
    top = argparse.ArgumentParser(
        prog="inferflow",
        description="InferFlow from the shell.",
        parents=[common],
        epilog="Exit codes: 0 ok, 1 a job failed, 2 usage, 3 key refused, 4 not found, "
        "5 unavailable, 6 request refused, 7 wait ran out, 130 interrupted.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[..., int], help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(run=run)
        return sub

    submit = command("submit", _submit, "submit a text")
    submit.add_argument("text")
    submit.add_argument("--model-version")
    _wait_option(submit)
    submit.add_argument("--idempotency-key")
    submit.add_argument("--deadline", help="Cancel-After: 90, 45s, 1h30m, 1500ms")
    submit.add_argument("--webhook", help="URL to POST the job to when it ends")

    get = command("get", _get, "show a job")
    get.add_argument("job_id")
    _wait_option(get)

    cancel = command("cancel", _cancel, "cancel a queued or running job")
    cancel.add_argument("job_id")

    jobs = command("jobs", _jobs, "list jobs, newest first")
    jobs.add_argument(
        "--status",
        action="append",
        choices=["queued", "started", "succeeded", "failed", "cancelled"],
    )
    jobs.add_argument("--model-version")
    jobs.add_argument("--label")
    jobs.add_argument("--batch-id")
    jobs.add_argument("--limit", type=int, default=None, help="at most this many (default all)")

    events = command("events", _events, "show a job's events")
    events.add_argument("job_id")
    events.add_argument("--follow", "-f", action="store_true", help="live, until the job ends")

    batch = command("batch", _batch, "run a JSON Lines file of jobs; rerun to resume")
    batch.add_argument("input", type=Path, metavar="INPUT.jsonl")
    batch.add_argument("-o", "--output", type=Path, required=True, metavar="OUTPUT.jsonl")
    batch.add_argument(
        "--part-lines",
        type=int,
        default=PART_LINES,
        help=f"lines sent per request (default {PART_LINES:,})",
    )
    batch.add_argument("--deadline", help="Cancel-After of every line without its own")
    batch.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the progress bar on stderr (default: when it is a terminal)",
    )
    return top


def _wait_option(command: argparse.ArgumentParser) -> None:
    # -1 (no SECONDS given): as long as it takes.
    help = "wait for the job to end (as long as it takes, or SECONDS)"
    command.add_argument("--wait", nargs="?", type=float, const=-1.0, metavar="SECONDS", help=help)


# ------------------------------------------------------------------------------ commands


def _submit(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    wait = _wait_s(args.wait)
    job = client.submit(
        args.text, args.model_version, wait, args.idempotency_key, args.deadline, args.webhook
    )
    _show_job(job, args.json, out)
    return _job_exit(job, args.wait is not None)


def _get(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    wait = _wait_s(args.wait)
    if wait is None:
        job = client.get(args.job_id)
    else:
        job = client.wait(args.job_id, None if wait == float("inf") else wait)
    _show_job(job, args.json, out)
    return _job_exit(job, args.wait is not None)


def _cancel(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    _show_job(client.cancel(args.job_id), args.json, out)
    return OK


def _jobs(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    found = client.jobs(
        args.status,
        model_version=args.model_version,
        label=args.label,
        batch_id=args.batch_id,
        page_size=min(args.limit or 100, 1000),
    )
    _emit(itertools.islice(found, args.limit), args.json, out, JOB_COLUMNS, _job_row)
    return OK


def _events(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    found = client.events(args.job_id, follow=args.follow)
    _emit(found, args.json, out, EVENT_COLUMNS, _event_row)
    return OK


def _batch(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    if args.part_lines < 1:
        print("inferflow batch: --part-lines must be at least 1", file=sys.stderr)
        return USAGE
    if not args.input.is_file():
        print(f"inferflow batch: no file {args.input}", file=sys.stderr)
        return USAGE
    progress = Progress(0, enabled=args.progress)
    run = BatchRun(client, args.input, args.output, args.part_lines, args.deadline, progress)
    if run.resumed:
        print(f"resuming from {run.state_path}", file=sys.stderr)
    summary = run.run()
    if args.json:
        out.write(json.dumps({"output": str(args.output), **asdict(summary)}) + "\n")
    else:
        out.write(
            f"{summary.lines:,} lines: {summary.succeeded:,} succeeded, {summary.failed:,} "
            f"failed, {summary.cancelled:,} cancelled, {summary.rejected:,} rejected "
            f"-> {args.output}\n"
        )
    return OK if summary.ok else FAILED


# ------------------------------------------------------------------------------ output


def _wait_s(value: float | None) -> float | None:
    if value is None:
        return None
    return float("inf") if value < 0 else value


def _job_exit(job: Job, waited: bool) -> int:
    if not waited or job.status == "succeeded":
        return OK
    return FAILED if job.done else TIMED_OUT


def plain(value: Any) -> Any:
    """`value` as JSON can hold it: dataclasses as objects, times as RFC 3339 text."""
    if is_dataclass(value) and not isinstance(value, type):
        return {key: plain(item) for key, item in vars(value).items()}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def _show_job(job: Job, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(plain(job)) + "\n")
        return
    fields = plain(job)
    result = fields.pop("result") or {}
    shown = {
        "job_id": fields["job_id"],
        "status": fields["status"],
        "label": result.get("label"),
        "score": _score(result.get("score")),
        **{k: v for k, v in fields.items() if k not in ("job_id", "status", "replayed")},
    }
    width = max(len(key) for key in shown)
    for key, value in shown.items():
        if value not in (None, ""):
            out.write(f"{key:<{width}}  {value}\n")


def _score(score: float | None) -> str:
    return "" if score is None else f"{score:.4f}"


def _job_row(job: Job) -> list[str]:
    result = job.result
    created = plain(job.created_at) or ""
    return [
        job.job_id,
        job.status,
        result.label if result else "",
        _score(result.score if result else None),
        created,
        job.custom_id or "",
    ]


def _event_row(event: Event) -> list[str]:
    return [
        plain(event.occurred_at) or "",
        event.type,
        event.consumer or "",
        "" if event.attempt is None else str(event.attempt),
        event.entry_id,
    ]


def _emit(
    rows: Iterable[Any],
    as_json: bool,
    out: TextIO,
    columns: dict[str, int],
    cells: Callable[[Any], list[str]],
) -> None:
    """JSON Lines, or a table of fixed column widths: rows are written as they come (a live
    stream, a listing of a million jobs), never held to be measured."""
    header = not as_json
    for row in rows:
        if as_json:
            out.write(json.dumps(plain(row)) + "\n")
        else:
            if header:  # once the first row came: an error prints no table at all
                _row([name.upper() for name in columns], columns, out)
                header = False
            _row(cells(row), columns, out)
        out.flush()
    if header:
        _row([name.upper() for name in columns], columns, out)


def _row(cells: list[str], columns: dict[str, int], out: TextIO) -> None:
    line = "  ".join(c.ljust(w) for c, w in zip(cells, columns.values(), strict=True))
    out.write(line.rstrip() + "\n")


if __name__ == "__main__":
    sys.exit(main())
