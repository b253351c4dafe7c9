"""Entry point: ``python -m infra run`` (what ``make run`` calls)."""

import sys

from infra.supervisor import main

if __name__ == "__main__":
    sys.exit(main())
