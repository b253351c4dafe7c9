"""The limit to compare against: a bare endpoint on the same stack that only appends to a stream.

Same server (uvicorn, one process), same framework and Redis client as the API, and nothing
else: no validation beyond a JSON body, no idempotency, no model check (`/append`, and
`/append_batch` for `{"items": [{"text": ...}, ...]}`, one pipelined XADD per item). Its accept
rate is the most any design on this stack can accept, so results are reported as a ratio to it
and stay comparable across machines.
"""

from __future__ import annotations

import os
import uuid

import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response

STREAM = os.environ.get("REFERENCE_STREAM", f"bench-reference-{uuid.uuid4().hex[:8]}")


def create_app() -> FastAPI:
    app = FastAPI()
    client = aioredis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)

    @app.post("/append", status_code=202)
    async def append(request: Request, response: Response) -> dict[str, str]:
        body = await request.json()
        entry = await client.xadd(STREAM, {"text": str(body.get("text", ""))})
        return {"id": str(entry)}

    @app.post("/append_batch", status_code=202)
    async def append_batch(request: Request) -> dict[str, int]:
        # The most a batch endpoint can do on this stack: one pipelined round trip of XADDs.
        items = (await request.json())["items"]
        pipe = client.pipeline(transaction=False)
        for item in items:
            pipe.xadd(STREAM, {"text": str(item.get("text", ""))})
        await pipe.execute()
        return {"accepted": len(items)}

    return app
