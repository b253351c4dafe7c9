"""/v1/webhooks: the caller's tenant's webhook signing secret, read and rotated.

Both need the `submit` scope: whoever names webhooks on submissions verifies them, and a key
that only reads jobs (a dashboard's) could forge deliveries with the secret. A tenant's secret
is made on its first read (or first delivery), and no key ever sees another tenant's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from api.deps import ServicesDep, SubmitterCharged
from api.guard import guarded
from api.responses import WEBHOOK_SECRET
from api.schemas import WebhookSecretBody
from readmodel.webhooksecrets import TenantSecrets

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _body(found: TenantSecrets) -> WebhookSecretBody:
    previous = found.valid(datetime.now(UTC))[1:]
    return WebhookSecretBody(
        secret=found.secret,
        previous_secret=previous[0] if previous else None,
        previous_valid_until=found.previous_valid_until if previous else None,
        created_at=found.created_at,
        rotated_at=found.rotated_at,
    )


@router.get(
    "/secret",
    response_model=WebhookSecretBody,
    summary="Read the webhook signing secret",
    description="The secret the caller's tenant's webhooks are signed with (made now if the "
    "tenant has none yet), and during a rotation the previous one. Needs the `submit` scope.",
    response_description="The tenant's secret.",
    responses=WEBHOOK_SECRET,
)
async def read_secret(svc: ServicesDep, principal: SubmitterCharged) -> WebhookSecretBody:
    async with guarded("postgres", svc.timeout_s):
        found = await svc.webhook_secrets.get(principal.tenant)
    return _body(found)


@router.post(
    "/secret/rotate",
    response_model=WebhookSecretBody,
    summary="Rotate the webhook signing secret",
    description="A new secret for the caller's tenant. The one it replaces stays valid for "
    "WEBHOOK_SECRET_OVERLAP_S (24 h by default): until then every delivery carries two "
    "signatures, one by each, so receivers can move to the new secret without losing a "
    "message. Rotating again within that time ends the oldest secret at once. Needs the "
    "`submit` scope.",
    response_description="The tenant's new secret, and the previous one.",
    responses=WEBHOOK_SECRET,
)
async def rotate_secret(svc: ServicesDep, principal: SubmitterCharged) -> WebhookSecretBody:
    overlap_s = svc.settings.webhook_secret_overlap_s
    async with guarded("postgres", svc.timeout_s):
        found = await svc.webhook_secrets.rotate(principal.tenant, overlap_s)
    return _body(found)
