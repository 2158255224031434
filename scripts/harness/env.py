"""Print the core's settings as shell assignments, so that the shell tools
outside the harness (scripts/lib.sh sources them) share its one source of
truth."""

from __future__ import annotations

import argparse
import shlex

from . import core


def run(argv):
    argparse.ArgumentParser(prog="env", description=__doc__).parse_args(argv)
    s = core.MLX
    values = {
        "ROOT": core.ROOT,
        "MLX": s.dir,
        "PATCHES": s.patches,
        "SERIES": s.series_file,
        "BUILD": core.BUILD,
        "VENV": core.VENV,
        "PY": core.PY,
        "BRANCH": s.branch,
        "BASE_REF": s.base_ref,
        "APPLIED_REF": s.applied_ref,
        "BASE_PULL_REF": s.pull_ref or "",
        "MLX_URL": s.url,
    }
    for k, v in values.items():
        print(f"{k}={shlex.quote(str(v))}")


if __name__ == "__main__":
    core.main(run)
