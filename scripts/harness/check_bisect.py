"""Build the series patch by patch, as 'git bisect' would stop anywhere: in a
scratch worktree of mlx/ at the base, apply each patch with git am and run an
incremental build of it (in build/bisect/). Stops at the first patch that
does not build, and names it. Slow: the first build is cold."""

from __future__ import annotations

import argparse
import subprocess

from . import build, core
from .check import Worktree
from .core import BUILD, die, git_run, step


def run(argv):
    argparse.ArgumentParser(prog="check_bisect", description=__doc__).parse_args(argv)
    s = core.MLX
    base = core.ensure_checkout(s)
    names = core.entries(s)
    where = BUILD / "bisect"
    with Worktree(s, base, where) as tree:
        for n, name in enumerate(names, 1):
            p = git_run(tree, "am", "-q", "--keep-cr", s.patches / name, check=False)
            if p.returncode != 0:
                die(f"{name} does not apply:\n{p.stdout}{p.stderr}")
            step(f"patch {n}/{len(names)}: {name}")
            log = where / f"build-{n}.log"
            try:
                with open(log, "w") as out:
                    build.build(tree=tree, build_dir=where / "cpu", out=out)
            except (core.Failure, subprocess.CalledProcessError):
                print("\n".join(log.read_text().splitlines()[-30:]))
                die(f"the series does not build after {name} (log: {log})")
    step(f"all {len(names)} patches build")


if __name__ == "__main__":
    core.main(run)
