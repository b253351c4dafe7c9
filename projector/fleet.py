"""One projector process serving several partitions: a thread per partition, each projecting
while it holds the partition's lease (projector.leases) and standing by while another process
does.

While it holds the lease, a partition is projected by two threads, each with its own
connection: one for the interactive lanes, one for the bulk lanes. A single job's events are
then applied while a round of a bulk backlog is, in a transaction of their own, rather than
after it (tens of milliseconds on a busy host). A job's events are all in one lane, and each
thread moves the checkpoints of its own lanes only, so the two never write the same rows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from eventlog.connection import Client
from projector.errors import PartitionThreadError
from projector.leases import Leases
from projector.runner import LaneKinds, Projector
from projector.settings import ProjectorSettings
from projector.store import ProjectionStore

log = logging.getLogger(__name__)


class Fleet:
    def __init__(
        self,
        settings: ProjectorSettings,
        client: Client,
        engine: Engine,
        partitions: Sequence[int],
    ) -> None:
        self._settings = settings
        self._client = client
        self._engine = engine
        self.partitions = tuple(partitions)
        self._leases = Leases(settings.database_url, settings.projection_name)

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop` is set; raises PartitionThreadError when a partition's thread
        failed: the whole process then stops (and its orchestrator restarts it), rather than
        live on with a partition that nothing projects."""
        failed: list[BaseException] = []
        threads = [
            threading.Thread(
                target=self._guarded, args=(p, stop, failed), name=f"projector-p{p}", daemon=True
            )
            for p in self.partitions
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                thread.join()
        finally:
            self._leases.close()
        if failed:
            raise PartitionThreadError("a partition's projector failed") from failed[0]

    def _guarded(self, partition: int, stop: threading.Event, failed: list[BaseException]) -> None:
        try:
            self._serve(partition, stop)
        except BaseException as exc:
            log.exception("partition %d: projector failed; stopping the process", partition)
            failed.append(exc)
            stop.set()

    def _serve(self, partition: int, stop: threading.Event) -> None:
        kinds: tuple[LaneKinds, ...] = ("interactive", "bulk")
        projectors = [
            Projector(
                self._settings,
                self._client,
                ProjectionStore(self._engine, self._settings.projection_name, partition=partition),
                serves=kind,
            )
            for kind in kinds
        ]
        retry_s = self._settings.lease_retry_ms / 1000
        limit = self._settings.projector_max_partitions
        while not stop.is_set():
            # Past the limit, the partition is left to another process.
            if not self._leases.acquire(partition, limit):
                stop.wait(retry_s)
                continue
            try:
                self._project(partition, projectors, stop, retry_s)
            finally:
                self._leases.release(partition)
            if not stop.is_set():
                log.warning("partition %d: lease lost, standing by", partition)

    def _project(
        self,
        partition: int,
        projectors: Sequence[Projector],
        stop: threading.Event,
        every_s: float,
    ) -> None:
        """Run `projectors` side by side until `stop`, or until one of them ends (the lease
        lost) or fails: then the others end too, and a failure is raised here."""
        ended = threading.Event()
        failed: list[BaseException] = []

        def project(projector: Projector) -> None:
            entitled = self._entitled(partition, every_s)
            try:
                projector.run(ended, lambda: not stop.is_set() and entitled())
            except BaseException as exc:
                failed.append(exc)
            finally:
                ended.set()

        threads = [
            threading.Thread(
                target=project,
                args=(projector,),
                name=f"projector-p{partition}-{projector.serves}",
                daemon=True,
            )
            for projector in projectors
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failed:
            raise failed[0]

    def _entitled(self, partition: int, every_s: float) -> Callable[[], bool]:
        """Asks the lease at most every `every_s`: it costs a round trip."""
        checked = time.monotonic()

        def entitled() -> bool:
            nonlocal checked
            if time.monotonic() - checked < every_s:
                return True
            checked = time.monotonic()
            return self._leases.holds(partition)

        return entitled
