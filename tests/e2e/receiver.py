"""A real HTTP receiver of webhooks on 127.0.0.1, for the tests: it records every request it
gets (headers and body as sent) and answers by its path:

- `/ok/...`: 204;
- `/flaky/N/...`: 500 to the first N requests of each webhook-id, then 200;
- `/gone/...`: 410 Gone;
- `/busy/S/...`: 503 with Retry-After: S to the first request of each webhook-id, then 200;
- `/redirect/...`: 307 to `/ok/...` (which must not be followed);
- `/slow/S/...`: 204 after S seconds;
- `/silent/...`: no answer until the receiver closes.

It verifies nothing itself: `verified` checks a request's signatures independently of the
`standardwebhooks` package, with the standard library's HMAC.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def signature(secret: str, webhook_id: str, timestamp: str, body: bytes) -> str:
    """Standard Webhooks' v1 signature, computed here: HMAC-SHA256 of `id.timestamp.body`
    under the base64-decoded secret (less its `whsec_` prefix), in base64."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verified(request: Received, secret: str, tolerance_s: float = 300) -> bool:
    """Whether one of the request's signatures is `secret`'s, with a timestamp close to now."""
    timestamp = request.headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    expected = signature(secret, request.webhook_id, timestamp, request.body)
    sent = request.headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(expected, one) for one in sent)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._seen: Counter[tuple[str, str]] = Counter()
        self._closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._record(Received(self.path, headers, body, time.monotonic()))
                receiver._answer(self, headers.get("webhook-id", ""))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _record(self, request: Received) -> None:
        with self._lock:
            self.received.append(request)

    def _answer(self, handler: BaseHTTPRequestHandler, webhook_id: str) -> None:
        parts = handler.path.strip("/").split("/")
        with self._lock:
            self._seen[(handler.path, webhook_id)] += 1
            seen = self._seen[(handler.path, webhook_id)]
        status, headers = 204, {}
        if parts[0] == "flaky" and seen <= int(parts[1]):
            status = 500
        elif parts[0] == "flaky":
            status = 200
        elif parts[0] == "gone":
            status = 410
        elif parts[0] == "busy" and seen == 1:
            status, headers = 503, {"Retry-After": parts[1]}
        elif parts[0] == "redirect":
            status, headers = 307, {"Location": "/ok/" + "/".join(parts[1:])}
        elif parts[0] == "slow":
            time.sleep(float(parts[1]))
        elif parts[0] == "silent":
            self._closing.wait(60)
            return
        handler.send_response(status)
        for name, value in {**headers, "Content-Length": "0"}.items():
            handler.send_header(name, value)
        handler.end_headers()

    def at(self, prefix: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path.startswith(prefix)]

    def wait_for(self, prefix: str, count: int, timeout_s: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.at(prefix)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise TimeoutError(f"{len(self.at(prefix))} of {count} requests to {prefix}")
