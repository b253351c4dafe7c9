"""A partition's lanes: one stream per tenant and kind of job (domain.lanes), in the partition's
slot.

Every event of a job goes to its lane's stream, in order, so each lane is a log of its own jobs:
replay, inspection and the projection need nothing else. Readers serve a partition's lanes side
by side (consumers read them in one XREADGROUP, which gives each lane its own share of a read;
projectors keep a checkpoint per lane), so a lane with a long backlog delays no other lane.

The default tenant's interactive lane is the partition's stream of releases before lanes
(`{inferflow:pN}:events`), so a log written before them is that lane and nothing else. Every
other lane is registered in the partition's set of lanes (`{inferflow:pN}:lanes`) by the script
that appends its first job, so readers find it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from domain.events import JobRequested
from domain.lanes import BULK, INTERACTIVE, KINDS
from domain.tenants import DEFAULT_TENANT, is_tenant

if TYPE_CHECKING:
    from eventlog.names import Names


@dataclass(frozen=True, slots=True, order=True)
class Lane:
    kind: str
    tenant: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS or not is_tenant(self.tenant):
            raise ValueError(f"no lane {self.kind}:{self.tenant}")

    @property
    def name(self) -> str:
        """How the lane is named in keys, the set of lanes and checkpoints: `kind:tenant`."""
        return f"{self.kind}:{self.tenant}"

    @property
    def interactive(self) -> bool:
        return self.kind == INTERACTIVE

    @property
    def other(self) -> Lane:
        """The tenant's lane of the other kind."""
        return Lane(BULK if self.interactive else INTERACTIVE, self.tenant)

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_LANE

    @classmethod
    def parse(cls, name: str) -> Lane:
        kind, _, tenant = name.partition(":")
        return cls(kind, tenant)

    @classmethod
    def of(cls, event: JobRequested) -> Lane:
        return cls(event.lane, event.tenant)


DEFAULT_LANE = Lane(INTERACTIVE, DEFAULT_TENANT)
BULK_DEFAULT = Lane(BULK, DEFAULT_TENANT)


def served_first(lanes: list[Lane]) -> list[Lane]:
    """`lanes` in the order a reader serves them: interactive ones first, each kind by name."""
    return sorted(lanes, key=lambda lane: (not lane.interactive, lane.name))


def known_lanes(client: Any, names: Names, partition: int) -> list[Lane]:
    """A partition's lanes, the default one included, in the order they are served
    (`served_first`). `client` is a blocking client."""
    return _with_default(client.smembers(names.lanes(partition)))


async def known_lanes_async(client: Any, names: Names, partition: int) -> list[Lane]:
    """`known_lanes` for an asyncio client."""
    return _with_default(await client.smembers(names.lanes(partition)))


def _with_default(members: Any) -> list[Lane]:
    lanes = {DEFAULT_LANE}
    for raw in members:
        try:
            lanes.add(Lane.parse(raw.decode() if isinstance(raw, bytes) else raw))
        except ValueError:  # a name written by hand that is no lane
            continue
    return served_first(list(lanes))
