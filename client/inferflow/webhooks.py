"""Checking a webhook delivery's signature: the Standard Webhooks scheme the notifier signs
with (`webhook-id`, `webhook-timestamp`, `webhook-signature`: `v1,` + base64 HMAC-SHA256 of
`id.timestamp.body` under the tenant's secret, one per valid secret, space-separated)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from inferflow.errors import InferFlowError

# Deliveries older or newer than this are refused: a captured one cannot be replayed later.
TOLERANCE_S = 300


class WebhookVerificationError(InferFlowError):
    """The delivery's signature, headers or timestamp do not check out."""


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | list[str],
    tolerance_s: float = TOLERANCE_S,
    now: float | None = None,
) -> Any:
    """The delivery's JSON body once its signature verifies under `secret` (or any of several,
    during a rotation); raises WebhookVerificationError otherwise. `body` is the raw body as
    received: any change, even of white space, breaks the signature."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        stamp = lowered["webhook-timestamp"]
        signatures = lowered["webhook-signature"].split()
    except KeyError as missing:
        raise WebhookVerificationError(f"missing header {missing}") from None
    if not stamp.isdigit():
        raise WebhookVerificationError("webhook-timestamp is not a Unix time")
    if abs((time.time() if now is None else now) - int(stamp)) > tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too far from now")
    raw = body.encode() if isinstance(body, str) else body
    signed = f"{webhook_id}.{stamp}.".encode() + raw
    offered = [s.removeprefix("v1,") for s in signatures if s.startswith("v1,")]
    for one in [secret] if isinstance(secret, str) else secret:
        expected = base64.b64encode(hmac.new(_key(one), signed, hashlib.sha256).digest())
        if any(hmac.compare_digest(expected, candidate.encode()) for candidate in offered):
            return json.loads(raw)
    raise WebhookVerificationError("no signature matches the secret")


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise WebhookVerificationError("the secret is not a whsec_ base64 secret") from None
