"""Batches being judged at once in one API process take turns: a single job's request then
waits for at most one run of items at each await, not one run of every batch."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, ClassVar

from pydantic import model_validator

from api import submission
from api.schemas import BatchItem
from eventlog.placement import Placement


class _Recorded(BatchItem):
    order: ClassVar[list[str]] = []

    @model_validator(mode="before")
    @classmethod
    def _record(cls, raw: Any) -> Any:
        cls.order.append(raw["custom_id"][0])
        return raw


def _services() -> SimpleNamespace:
    return SimpleNamespace(
        judging=asyncio.Lock(),
        default_model=lambda: "v1",
        require_model=lambda version: None,
        log=SimpleNamespace(placement=Placement(1)),
    )


async def _judge_concurrently(svc: SimpleNamespace, items: int) -> list[str]:
    _Recorded.order = []
    context = submission.BatchContext(batch_id="b", tenant="t", item_model=_Recorded)

    async def batch(tag: str) -> None:
        rows = [{"text": "hello", "custom_id": f"{tag}{n}"} for n in range(items)]
        answers, pending = await submission.judge(rows, svc, context)  # type: ignore[arg-type]
        assert len(answers) == len(pending) == items

    async def single_request() -> None:
        # A request's awaits: each one lets whatever is ready run before it goes on.
        for _ in range(items // submission.JUDGE_RUN * 2):
            _Recorded.order.append("s")
            await asyncio.sleep(0)

    await asyncio.gather(batch("a"), batch("b"), single_request())
    return _Recorded.order


def test_batches_are_judged_one_after_the_other() -> None:
    order = asyncio.run(_judge_concurrently(_services(), 3 * submission.JUDGE_RUN))
    judged = [tag for tag in order if tag != "s"]
    assert judged == ["a"] * (3 * submission.JUDGE_RUN) + ["b"] * (3 * submission.JUDGE_RUN)


def test_a_single_request_waits_one_run_between_its_steps() -> None:
    order = asyncio.run(_judge_concurrently(_services(), 3 * submission.JUDGE_RUN))
    runs, current = [], 0
    for tag in order:
        if tag == "s":
            runs.append(current)
            current = 0
        else:
            current += 1
    # Between two steps of the single request, at most one run of one batch was judged.
    assert max(runs) <= submission.JUDGE_RUN
