import sys

from inferflow.cli import main

sys.exit(main())
