"""The submit-side check of a job's webhook URL (runtime.webhookurls): its host is resolved
and every address checked before the job is accepted, so a client hears of a refused URL at
once (422 webhook-refused) rather than never. The notifier checks again at delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime import webhookurls

if TYPE_CHECKING:
    from api.deps import Services

# The problem detail's slug and title (api/problems.py; a batch item's error).
WEBHOOK_REFUSED = ("webhook-refused", "Webhook refused")


async def admit_webhook(svc: Services, url: str) -> None:
    """Nothing, when `url` may be called; `RefusedWebhookError` else."""
    allow = svc.settings.webhook_allow_private_networks
    await webhookurls.check(url, allow, svc.timeout_s)
