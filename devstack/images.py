"""Container images on a machine with a Docker engine and no image registry.

Stand-ins for the official `python`, `redis`, `postgres` and `prometheus` images are built from
Debian's packages on a Debian base made with debootstrap, and the service's own image from the
Dockerfile on top of the python stand-in (Grafana has no Debian package, so no stand-in). Each
image carries a label with the hash of what it was built from, so it is built once and again
only when that changes: a second run costs a few `docker image inspect` calls.

`python -m devstack images` builds them all; the container tests and `make test` call it too.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "images"
LABEL = "org.inferflow.source-hash"
SUITE = "bookworm"
# The host's extra certificate authorities (a TLS-inspecting proxy's, say): an image without them
# could not reach the package registries the host reaches.
HOST_AUTHORITIES = Path("/usr/local/share/ca-certificates")
# What the service image is built from (the Dockerfile's COPY lines name the same).
SERVICE_SOURCES = (
    "Dockerfile",
    "pyproject.toml",
    "constraints.txt",
    "README.md",
    "alembic.ini",
    "alembic",
    "domain",
    "eventlog",
    "readmodel",
    "runtime",
    "classifier",
    "api",
    "consumer",
    "projector",
    "notifier",
)


@dataclass(frozen=True)
class Images:
    """The tags to run: the base the service image is built on, and the stand-ins."""

    debian: str = f"inferflow-standin/debian:{SUITE}"
    python: str = "inferflow-standin/python:3.11"
    redis: str = "inferflow-standin/redis:7"
    postgres: str = "inferflow-standin/postgres:15"
    prometheus: str = "inferflow-standin/prometheus:2"
    service: str = "inferflow:local"

    def compose_env(self) -> dict[str, str]:
        """The compose.yaml variables that pick these images instead of the official ones."""
        return {
            "INFERFLOW_IMAGE": self.service,
            "PYTHON_IMAGE": self.python,
            "REDIS_IMAGE": self.redis,
            "POSTGRES_IMAGE": self.postgres,
            "PROMETHEUS_IMAGE": self.prometheus,
        }


STANDINS = Images()
Report = Callable[[str], None]


class ImageBuildError(RuntimeError):
    """An image could not be built (no engine, no debootstrap, a failed build step)."""


def docker(*args: str, capture: bool = False, stdin: bytes | None = None) -> str:
    """Run the docker CLI; its output when `capture`, and ImageBuildError, with what it said on
    stderr, when it fails."""
    try:
        done = subprocess.run(
            ["docker", *args],
            input=stdin,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE,
            check=False,
        )
    except OSError as exc:
        raise ImageBuildError(f"docker {' '.join(args[:2])}: {exc}") from exc
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip()[-3000:]
        raise ImageBuildError(f"docker {' '.join(args[:2])} failed ({done.returncode}): {said}")
    return done.stdout.decode().strip() if capture else ""


_LABEL_FORMAT = f'{{{{ index .Config.Labels "{LABEL}" }}}}'


def built_from(tag: str) -> str | None:
    """The source hash an image was built from; None when there is no such image."""
    try:
        done = subprocess.run(
            ["docker", "image", "inspect", "--format", _LABEL_FORMAT, tag],
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.decode().strip() if done.returncode == 0 else None


def _digest(paths: Iterable[Path], extra: Mapping[str, str] | None = None) -> str:
    digest = hashlib.sha256()
    for key, value in sorted((extra or {}).items()):
        digest.update(f"{key}={value}\n".encode())
    for path in sorted(paths):
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                name = file.relative_to(REPO_ROOT) if file.is_relative_to(REPO_ROOT) else file
                digest.update(str(name).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _authorities() -> list[Path]:
    return sorted(HOST_AUTHORITIES.glob("*.crt")) if HOST_AUTHORITIES.is_dir() else []


def ensure_debian(tag: str = STANDINS.debian, report: Report = print) -> str:
    """A minimal Debian base image (debootstrap from the machine's mirror), with the host's
    certificate authorities."""
    wanted = _digest(_authorities(), {"suite": SUITE, "variant": "minbase", "recipe": "1"})
    if built_from(tag) == wanted:
        return tag
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
    report(f"building {tag} with debootstrap")
    with tempfile.TemporaryDirectory(prefix="inferflow-rootfs-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "root"
        try:
            subprocess.run(
                ["debootstrap", "--variant=minbase", SUITE, str(root)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ImageBuildError(f"debootstrap failed: {exc}") from exc
        _add_authorities(root)
        # The mirror's package lists are not needed in an image; apt-get update fetches them.
        shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
        (root / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.run(
            ["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE, check=True
        )
        docker(
            "import",
            "--change", f"LABEL {LABEL}={wanted}",
            "--change", 'CMD ["/bin/bash"]',
            "-", tag,
            stdin=tar.stdout,
        )  # fmt: skip
    return tag


def _add_authorities(root: Path) -> None:
    authorities = _authorities()
    if not authorities:
        return
    target = root / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    for crt in authorities:
        shutil.copy(crt, target / crt.name)
    # minbase has no ca-certificates package yet: the bundle is written by hand, and the
    # package regenerates it (with these) when an image installs it.
    bundle = root / "etc/ssl/certs/ca-certificates.crt"
    bundle.parent.mkdir(parents=True, exist_ok=True)
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if host_bundle.exists():
        shutil.copy(host_bundle, bundle)


def build(
    tag: str,
    context: Path,
    sources: Iterable[Path],
    args: Mapping[str, str] | None = None,
    report: Report = print,
) -> str:
    """`docker build` of `context` as `tag`, unless an image built from the same sources and
    build arguments is there already."""
    args = dict(args or {})
    # A base image built anew (another hash) makes the images on it stale too.
    bases = ",".join(built_from(image) or "" for image in args.values())
    wanted = _digest(sources, {**args, "bases": bases})
    if built_from(tag) == wanted:
        return tag
    report(f"building {tag}")
    argv = ["build", "--quiet", "--tag", tag, "--label", f"{LABEL}={wanted}"]
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    docker(*argv, str(context), capture=True)
    return tag


def ensure_standins(images: Images = STANDINS, report: Report = print) -> Images:
    """The base and the stand-ins for the python, redis, postgres and prometheus images."""
    ensure_debian(images.debian, report)
    base = {"DEBIAN_IMAGE": images.debian}
    standins = {
        "python": images.python,
        "redis": images.redis,
        "postgres": images.postgres,
        "prometheus": images.prometheus,
    }
    for name, tag in standins.items():
        build(tag, HERE / name, [HERE / name], base, report)
    return images


def ensure_service(images: Images = STANDINS, report: Report = print) -> str:
    """The service's image, on the python stand-in as its base."""
    sources = [REPO_ROOT / name for name in SERVICE_SOURCES]
    return build(images.service, REPO_ROOT, sources, {"BASE_IMAGE": images.python}, report)


def ensure_all(images: Images = STANDINS, report: Report = print) -> Images:
    ensure_standins(images, report)
    ensure_service(images, report)
    return images


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--standins"]):
        print("usage: python -m devstack images [--standins]", file=sys.stderr)
        return 2
    try:
        images = ensure_standins() if args else ensure_all()
    except ImageBuildError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    for name, tag in vars(images).items():
        print(f"{name:<9} {tag}")
    return 0
