"""`python -m services.profiler` = `quantmesh profile` (see `services.profiler.cli`)."""

import sys

from services.profiler.cli import main

if __name__ == "__main__":
    sys.exit(main())
