"""Summing py-spy's collapsed stacks by function (bench.profiles): without servers."""

from __future__ import annotations

from pathlib import Path

from bench.profiles import read, summary

ROOT = "<module> (api/__main__.py:79);run (asyncio/runners.py:118)"
STACKS = "\n".join(
    [
        f"{ROOT};get_job (api/answers.py:20);execute (psycopg/cursor_async.py:113) 30",
        f"{ROOT};get_job (api/answers.py:22);render (api/conditional.py:55) 10",
        f"{ROOT};data_received (uvicorn/httptools_impl.py:174) 60",
    ]
)


def test_samples_are_summed_by_function_whatever_the_line(tmp_path: Path):
    path = tmp_path / "01-wait-32c-api-1.txt"
    path.write_text(STACKS)
    profile = read("api", [path])
    assert profile.samples == 100
    assert profile.own["execute (cursor_async.py)"] == 30
    # Two lines of one function are one function.
    assert profile.total["get_job (answers.py)"] == 40
    assert profile.total["run (runners.py)"] == 100
    assert profile.top(profile.own, 1) == [("data_received (httptools_impl.py)", 0.6)]


def test_the_processes_of_a_role_add_up(tmp_path: Path):
    one, two = tmp_path / "a.txt", tmp_path / "b.txt"
    one.write_text(STACKS)
    two.write_text(
        "<module> (consumer/__main__.py:1);predict (sklearn/pipeline.py:9) 100\nbad line\n"
    )
    profile = read("consumer", [one, two])
    assert profile.samples == 200
    assert profile.top(profile.own, 1) == [("predict (pipeline.py)", 0.5)]


def test_the_summary_names_each_roles_busiest_functions(tmp_path: Path):
    path = tmp_path / "p.txt"
    path.write_text(STACKS)
    lines = summary([read("api", [path])], n=2)
    assert lines[0] == "api: 100 samples (about 1.0 s of CPU)"
    assert lines[1].split() == ["self", "60.0%", "data_received", "(httptools_impl.py)"]
    # The frames every stack passes through (the module, the event loop) are left out.
    totals = [line.split() for line in lines if line.split()[0] == "total"]
    assert totals[0] == ["total", "60.0%", "data_received", "(httptools_impl.py)"]
    assert totals[1] == ["total", "40.0%", "get_job", "(answers.py)"]
