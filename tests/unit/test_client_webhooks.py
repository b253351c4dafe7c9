"""verify_webhook checks exactly what the notifier signs (its own signing code signs here)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from inferflow import WebhookVerificationError, verify_webhook
from notifier.signing import headers
from readmodel.webhooksecrets import new_secret

BODY = json.dumps({"job_id": "j-1", "status": "succeeded"}).encode()


def _signed(*secrets: str, at: datetime | None = None) -> dict[str, str]:
    return headers("msg_j-1_completed", at or datetime.now(UTC), BODY, list(secrets))


def test_a_delivery_signed_by_the_notifier_verifies():
    secret = new_secret()
    assert verify_webhook(_signed(secret), BODY, secret) == {"job_id": "j-1", "status": "succeeded"}
    # Header names arrive in any case.
    upper = {name.title(): value for name, value in _signed(secret).items()}
    assert verify_webhook(upper, BODY, secret)["job_id"] == "j-1"


def test_during_a_rotation_either_secret_verifies():
    old, new = new_secret(), new_secret()
    both = _signed(new, old)
    assert verify_webhook(both, BODY, old)
    assert verify_webhook(both, BODY, new)
    assert verify_webhook(_signed(new), BODY, [old, new])


def test_a_changed_body_another_secret_or_an_old_delivery_is_refused():
    secret = new_secret()
    with pytest.raises(WebhookVerificationError):
        verify_webhook(_signed(secret), BODY + b" ", secret)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(_signed(secret), BODY, new_secret())
    stale = _signed(secret, at=datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(WebhookVerificationError, match="timestamp"):
        verify_webhook(stale, BODY, secret)
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify_webhook({}, BODY, secret)
