"""Remove the build outputs: build/, dist/ and the in-place build in
mlx/python/mlx (ignored files only). Keeps .venv and the series in mlx/."""

from __future__ import annotations

import argparse
import shutil

from . import core
from .core import ROOT, git, step


def run(argv):
    argparse.ArgumentParser(prog="clean", description=__doc__).parse_args(argv)
    for d in (core.BUILD, ROOT / "dist"):
        if d.exists():
            shutil.rmtree(d)
    if core.checked_out(core.MLX):
        git(core.MLX.dir, "clean", "-q", "-fdX", "python/mlx")
    step("removed build/, dist/ and the in-place build in mlx/python/mlx")


if __name__ == "__main__":
    core.main(run)
