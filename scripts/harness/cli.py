"""Dispatch 'python3 scripts/harness STEP [options]' to the step's module."""

from __future__ import annotations

import importlib
import sys

from . import core

STEPS = {
    "deps": "install what the build and the tests need",
    "submodule": "check out the submodules at the pinned bases",
    "apply": "apply the series to the submodules",
    "export": "rewrite patches/ from the submodules' commits",
    "build": "build the patched mlx in place",
    "test": "run this project's tests and upstream's suite",
    "check": "lint the series",
    "check_bisect": "build the series patch by patch",
    "check_upstream": "try the base and the series on upstream's newest main",
    "wheel": "a wheel of the tested build in dist/",
    "cuda_deps": "the CUDA backend's sources, for an offline build",
    "clean": "remove the build outputs",
}


def usage():
    lines = ["usage: python3 scripts/harness STEP [options]", "", "steps:"]
    lines += [f"  {name:<13} {what}" for name, what in STEPS.items()]
    return "\n".join(lines)


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name = argv[0].replace("-", "_")
    if name not in STEPS:
        print(f"error: no step {argv[0]}\n{usage()}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"harness.{name}")
    core.main(module.run, argv[1:])
