"""The client's pure parts: the progress bar's text, the event stream parser, and how
`inferflow batch` reads a file (custom ids, refused lines, deterministic parts)."""

from __future__ import annotations

import io
import json

from inferflow.batchfile import fingerprint, parts, read_lines
from inferflow.progress import Progress, eta, line
from inferflow.sse import Parser


def test_the_progress_line_says_done_failed_rate_and_time_left():
    text = line("running", 2_500, 12, 10_000, 500.0)
    assert "2,500/10,000" in text and "25.0%" in text
    assert "failed 12" in text and "500/s" in text
    assert "left 0:15" in text  # 7,500 more at 500/s
    assert "[######" in text and "......]" in text
    assert "left --:--" in line("running", 0, 0, 10, 0.0)
    assert "left 0:00" in line("done", 10, 0, 10, 0.0)
    assert eta(3725) == "1:02:05"


def test_the_event_stream_parser_joins_data_lines_and_drops_comments():
    parser = Parser()
    lines = [": heartbeat", "", "event: JobStarted", 'data: {"a":', "data: 1}", "id: 5-0", ""]
    messages = [m for m in map(parser.feed, lines) if m is not None]
    assert len(messages) == 1
    assert messages[0].event == "JobStarted"
    assert json.loads(messages[0].data) == {"a": 1}
    assert messages[0].id == "5-0"


def test_lines_get_custom_ids_and_bad_ones_are_refused_here(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"custom_id": "a", "text": "one"}\n'
        "\n"
        '{"text": "no id"}\n'
        "not json\n"
        '{"custom_id": "a", "text": "again"}\n'
        "[1, 2]\n"
    )
    found = list(read_lines(source))
    assert [(x.number, x.custom_id) for x in found] == [
        (1, "a"),
        (3, "line-3"),
        (4, "line-4"),
        (5, "a"),
        (6, "line-6"),
    ]
    assert found[0].body == b'{"custom_id": "a", "text": "one"}'  # sent as written
    assert json.loads(found[1].body) == {"text": "no id", "custom_id": "line-3"}
    assert [x.error["type"].rsplit(":", 1)[1] for x in found if x.error] == [
        "malformed-json",
        "duplicate-custom-id",
        "validation-error",
    ]
    assert fingerprint(source)[1] == 5


def test_parts_are_the_same_on_every_read(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(f'{{"text": "t{n}"}}\n' for n in range(25)))
    first = [[x.custom_id for x in part] for part in parts(source, 10)]
    assert [len(p) for p in first] == [10, 10, 5]
    assert first == [[x.custom_id for x in part] for part in parts(source, 10)]


def test_the_bar_is_redrawn_in_place_only_when_on():
    shown = io.StringIO()
    bar = Progress(100, stream=shown, enabled=True, hz=1000)
    bar.show("running", 50, 1, force=True)
    bar.show("done", 100, 1, force=True)
    bar.finish()
    first, second = shown.getvalue().split("\r")[1:]
    assert first.startswith("running") and "50/100" in first and first.endswith("\x1b[K")
    assert second.startswith("done") and "100/100" in second and second.endswith("\n")
    quiet = io.StringIO()
    off = Progress(100, stream=quiet, enabled=False)
    off.show("running", 50, 0, force=True)
    off.finish()
    assert quiet.getvalue() == ""
