"""``python -m devstack run`` (what ``make run`` calls) and ``python -m devstack images``
(local container images, where no registry is reachable)."""

import sys

from devstack import images, supervisor

COMMANDS = {"run": supervisor.main, "images": images.main}

if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in COMMANDS:
        print("usage: python -m devstack run | images [--standins]", file=sys.stderr)
        sys.exit(2)
    sys.exit(COMMANDS[command](sys.argv[1:] if command == "run" else sys.argv[2:]))
