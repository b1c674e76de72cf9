"""`python -m tools.profiler` = `quantmesh profile` (see `tools.profiler.cli`)."""

import sys

from tools.profiler.cli import main

if __name__ == "__main__":
    sys.exit(main())
