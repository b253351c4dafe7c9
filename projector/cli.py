"""Command line of `python -m projector`: no argument runs the live projector."""

from __future__ import annotations

import argparse


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m projector")
    commands = root.add_subparsers(dest="command")
    commands.add_parser("run", help="keep the jobs table folded from the log (the default)")
    rebuild = commands.add_parser(
        "rebuild", help="replay the whole log into a new jobs table and swap it in live"
    )
    rebuild.add_argument("--batch", type=int, default=2000, help="entries per transaction")
    rebuild.add_argument(
        "--fresh", action="store_true", help="discard an unfinished rebuild instead of resuming"
    )
    trim = commands.add_parser("trim", help="trim each lane's stream to what is archived and acked")
    trim.add_argument(
        "--keep-seconds", type=float, default=0, help="keep entries younger than this too"
    )
    commands.add_parser(
        "upgrade-log",
        help="rename the keys of a log from before partitions to partition 0's (roles stopped)",
    )
    events = commands.add_parser("events", help="read the event log")
    what = events.add_subparsers(dest="events_command", required=True)
    what.add_parser("tail", help="follow new events of every lane, one line each")
    show = what.add_parser("show", help="every event of one job")
    show.add_argument("job_id")
    what.add_parser("stats", help="each lane's stream length, groups, lag, pending; dead letters")
    return root
