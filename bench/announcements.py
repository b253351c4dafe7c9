"""When the projection announced each job terminal: the projectors' PUBLISH on `<prefix>:terminal`
(one message per committed batch, a line per job that starts with its id; readmodel.announcement)
heard by a thread of the bench, to split a waiting job's time after its outcome into the
projection (outcome to announcement) and the API's wake-up and answer (announcement to client).

Messages are kept as they come (a few hundred a second under load) and read afterwards, so the
listener costs the measured stack next to nothing. On a Redis Cluster every node forwards a
PUBLISH, so the node of the URL hears every partition's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

import redis

ID_CHARS = 36  # a job id, as the first characters of its line


class Announcements:
    def __init__(self, redis_url: str, channel: str) -> None:
        self.messages: list[tuple[float, bytes]] = []
        self._client = redis.Redis.from_url(redis_url)
        pubsub: Any = self._client.pubsub  # redis-py leaves PubSub partly untyped
        self._pubsub = pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(channel)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.1)
            if message is not None and message.get("type") == "message":
                self.messages.append((time.time(), bytes(message["data"])))

    def times(self, jobs: Collection[str]) -> dict[str, float]:
        """time.time() when each of `jobs` was first announced (those that were)."""
        found: dict[str, float] = {}
        for at, data in self.messages:
            for line in data.split(b"\n"):
                job = line[:ID_CHARS].decode("ascii", "replace")
                if job in jobs and job not in found:
                    found[job] = at
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pubsub.close()
        self._client.close()


@contextmanager
def listening(redis_url: str, channel: str) -> Iterator[Announcements]:
    heard = Announcements(redis_url, channel)
    try:
        yield heard
    finally:
        heard.close()
