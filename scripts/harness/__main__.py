"""python3 scripts/harness STEP [options]: run one step of the harness."""

import sys
from pathlib import Path

# Run as a directory, Python puts scripts/harness/ on the path; the package
# needs scripts/.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from harness import cli  # noqa: E402

cli.main(sys.argv[1:])
