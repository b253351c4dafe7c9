"""Every Redis stream, consumer group and key name InferFlow uses, in one place.

The log is split into partitions. Every key of a partition carries the partition's hash tag
(`{inferflow:p3}`), so on a Redis Cluster all of them live in one slot and the scripts that touch
several at once run there. A job's keys are its partition's: the partition is read off the job
id (domain.ids). An Idempotency-Key's record has a tag of its own, the key itself, because the
key must find its job whatever the number of partitions is when the request comes again.

A prefix lets several deployments (or test runs) share one Redis without seeing each other's
data.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.ids import partition_of
from domain.tenants import DEFAULT_TENANT
from eventlog.lanes import Lane

WORKERS_GROUP = "workers"
NOTIFIER_GROUP = "notifier"


@dataclass(frozen=True, slots=True)
class Names:
    prefix: str = "inferflow"

    def tag(self, partition: int) -> str:
        """The hash tag of a partition's keys."""
        return f"{{{self.prefix}:p{partition}}}"

    def events(self, partition: int) -> str:
        """The stream of a partition's default lane (the default tenant's interactive jobs),
        which was a partition's whole log before lanes."""
        return f"{self.tag(partition)}:events"

    def lane(self, partition: int, lane: Lane) -> str:
        """A lane's stream: every event of its jobs, in order. The lanes of all partitions are
        the log, the source of truth (eventlog.lanes)."""
        if lane.is_default:
            return self.events(partition)
        return f"{self.tag(partition)}:events:{lane.name}"

    def queued(self, partition: int, lane: Lane) -> str:
        """String: how many of a lane's jobs are accepted and not finished (SUBMIT adds, FINISH
        takes away), for its tenant's cap on unfinished jobs."""
        return f"{self.tag(partition)}:queued:{lane.name}"

    def lanes(self, partition: int) -> str:
        """Set: the names of a partition's lanes other than the default one."""
        return f"{self.tag(partition)}:lanes"

    @property
    def workers_group(self) -> str:
        """Consumer group of the inference workers on each partition's log."""
        return WORKERS_GROUP

    def dead_letters(self, partition: int) -> str:
        """Stream of a partition's requests that were delivered too often without finishing."""
        return f"{self.tag(partition)}:dead-letters"

    @property
    def notifier_group(self) -> str:
        """Consumer group of the webhook notifiers on each lane of each partition."""
        return NOTIFIER_GROUP

    def webhook_job(self, job_id: str) -> str:
        """Hash: a job's webhook (URL, filter, tenant, lane) and its events seen so far, kept by
        the notifier from its JobRequested until its completed message is scheduled."""
        return f"{self.tag(partition_of(job_id))}:webhook-job:{job_id}"

    def webhook(self, partition: int, webhook_id: str) -> str:
        """Hash: one webhook message (domain.webhooks.message_id) of a partition (its job's;
        partition 0 for a batch's): where it goes, its body, the attempts made and, once done,
        how it ended."""
        return f"{self.tag(partition)}:webhook:{webhook_id}"

    @property
    def webhook_batches(self) -> str:
        """Sorted set: the batches whose webhook waits for them to finish, by when the notifier
        looks at each next (Unix ms). Their webhooks are in their records (`batch`)."""
        return f"{self.prefix}:webhook-batches"

    def webhooks_due(self, partition: int) -> str:
        """Sorted set: a partition's webhook messages still to send, by when (Unix ms), a
        message being sent by the end of its notifier's lease."""
        return f"{self.tag(partition)}:webhooks-due"

    def webhook_dead_letters(self, partition: int) -> str:
        """Stream of a partition's abandoned webhook messages, each with its body, to redrive."""
        return f"{self.tag(partition)}:webhook-dead-letters"

    @property
    def terminal(self) -> str:
        """Pub/sub channel: job ids (space-separated) that a projector just made terminal.
        A Redis Cluster forwards PUBLISH to every node, so every API hears every partition."""
        return f"{self.prefix}:terminal"

    def job(self, job_id: str) -> str:
        """String: where the job's JobRequested is, for reads before projection: its entry id,
        then its lane's name when that is not the default lane (eventlog.submission)."""
        return f"{self.tag(partition_of(job_id))}:job:{job_id}"

    def run(self, job_id: str) -> str:
        """String: how far a job's run has got, for the scripts that decide its one terminal
        event: "started", then the type of its terminal event; absent while it is queued."""
        return f"{self.tag(partition_of(job_id))}:run:{job_id}"

    def deadlines(self, partition: int) -> str:
        """Sorted set: a partition's jobs that have a deadline ("job_id lane"), scored by it
        in Unix ms, until they end."""
        return f"{self.tag(partition)}:deadlines"

    def batch_cancelled(self, partition: int, batch_id: str) -> str:
        """String: present once a batch is cancelled, in every partition, so that its jobs
        still queued there end cancelled instead of starting."""
        return f"{self.tag(partition)}:batch-cancelled:{batch_id}"

    def batch(self, batch_id: str) -> str:
        """Hash: a batch's tenant, creation time and the number of jobs it was given, written
        as they are accepted, so that the batch is known before the projector has its jobs."""
        return f"{self.prefix}:batch:{{{batch_id}}}"

    def idempotency(self, key: str, tenant: str = DEFAULT_TENANT) -> str:
        """Hash: the job id and request fingerprint a tenant's Idempotency-Key is bound to.
        Keys are per tenant: two tenants sending one key get two jobs. The default tenant's
        keep the name they had before tenants, so a key sent again across the upgrade still
        finds its job."""
        if tenant == DEFAULT_TENANT:
            return f"{self.prefix}:idempotency:{{{key}}}"
        return f"{self.prefix}:idempotency:{{{tenant}/{key}}}"

    def tenant_tag(self, tenant: str) -> str:
        """The hash tag of a tenant's own keys (its rate limits): one slot per tenant, so one
        script can check and count all of a request's limits at once."""
        return f"{{{self.prefix}:t:{tenant}}}"

    def rate(self, tenant: str, bucket: str) -> str:
        """String: the theoretical arrival time (GCRA) of one of a tenant's rate buckets."""
        return f"{self.tenant_tag(tenant)}:rate:{bucket}"

    def rate_receipt(self, tenant: str, request_id: str) -> str:
        """String: the decision a request's charge got, so that the call sent again (after a
        dropped connection) is not charged twice."""
        return f"{self.tenant_tag(tenant)}:receipt:{request_id}"

    @property
    def patterns(self) -> tuple[str, ...]:
        """SCAN patterns that match every key of this prefix (and of no other prefix)."""
        return (f"{{{self.prefix}:p[0-9]*}}:*", f"{{{self.prefix}:t:*}}:*", f"{self.prefix}:*")


@dataclass(frozen=True, slots=True)
class LegacyNames:
    """The names of the single, unpartitioned log of releases before partitions, for the
    upgrade (eventlog.upgrade) only."""

    prefix: str = "inferflow"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}:dead-letters"

    @property
    def job_pattern(self) -> str:
        return f"{self.prefix}:job:*"

    @property
    def idempotency_pattern(self) -> str:
        return f"{self.prefix}:idempotency:*"
