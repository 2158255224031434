#!/usr/bin/env python3
"""Type-check MLX's Metal kernels without Apple's Metal compiler: clang
-fsyntax-only on them as C++ for OpenCL (C++17 with address spaces), with
scripts/metal/shim/ standing in for the Metal language and library.

By default it checks every .metal file whose includes reach a file that the
series changes (mlx/'s working tree against the base); name kernels (paths
under mlx/backend/metal/kernels/) to check only those.
  --tree DIR   check the kernels of another MLX source tree (default mlx/)
The kernels are copied to a scratch directory, where three MSL constructs
are rewritten on their own lines (msl.rewrite_msl); diagnostics name the
files of the checked tree. README.md says what the check proves."""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from msl import (
    BASE_REF,
    CLANG,
    CLCPP,
    KERNELS,
    MLX,
    SHIM,
    TREE_INCLUDE,
    WARNINGS,
    copy_kernels,
    die,
    mlx_git,
    note,
    require_clang,
)

# MSL has no double (its floating literals are float) and no program-scope
# variables outside the constant address space.
OPENCL_FEATURES = [
    "-cl-single-precision-constant",
    "-Xclang",
    "-cl-ext=-cl_khr_fp64,-__opencl_c_fp64,"
    "-__opencl_c_program_scope_global_variables,-__opencl_c_device_enqueue",
]
# Kernels the shim does not model: the NAX ones need Metal 4's
# MetalPerformancePrimitives, whose matmul2d takes a class-type template
# argument (C++20; C++ for OpenCL is C++17), and bfloat vectors.
UNMODELLED = re.compile(r"_nax\.metal$")


def include_closure(tree, kernel):
    """The kernel headers that a file includes, directly or not, and the file."""
    seen, todo = set(), [kernel]
    while todo:
        f = todo.pop()
        if f in seen or not (tree / f).is_file():
            continue
        seen.add(f)
        todo += TREE_INCLUDE.findall((tree / f).read_text())
    return seen


def _tree_git(tree):
    """git in the checked tree when it is a checkout of MLX that has the
    series' base (a worktree of mlx/, say), else in mlx/."""
    top = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
    )
    if top.returncode == 0 and Path(top.stdout.strip()).resolve() == tree.resolve():

        def git(*args):
            return subprocess.run(
                ["git", "-C", str(tree), *args], capture_output=True, text=True
            )

        if git("rev-parse", "-q", "--verify", BASE_REF).returncode == 0:
            return git
    return mlx_git


def touched_kernels(tree):
    """The .metal files of the tree whose include closure has a file that the
    series changes: in the tree when it is a checkout of MLX with the
    series' base (a worktree of mlx/), else in mlx/."""
    git = _tree_git(tree)
    if git("rev-parse", "-q", "--verify", BASE_REF).returncode != 0:
        die(f"mlx/ has no {BASE_REF}: run 'make apply' first")
    p = git("diff", "--name-only", BASE_REF, "--", KERNELS, "mlx/backend/common")
    if p.returncode != 0:
        die(f"git diff in mlx/ failed: {p.stderr.strip()}")
    changed = set(p.stdout.split())
    if not changed:
        return []
    kernels = sorted(
        str(k.relative_to(tree)) for k in (tree / KERNELS).rglob("*.metal")
    )
    return [k for k in kernels if include_closure(tree, k) & changed]


def check_kernel(copy, tree, kernel):
    """clang -fsyntax-only on one kernel of the rewritten copy; prints the
    diagnostics with the checked tree's paths. True when it type-checks."""
    p = subprocess.run(
        [CLANG, "--target=spir64", *CLCPP, *OPENCL_FEATURES, "-fsyntax-only"]
        + ["-isystem", str(SHIM), "-include", "metal_shim.h"]
        + ["-include", "mlx_instantiate.h", "-I", str(copy), *WARNINGS]
        + [str(copy / kernel)],
        capture_output=True,
        text=True,
    )
    out = (p.stdout + p.stderr).replace(f"{copy}/", f"{tree}/")
    sys.stdout.write(out)
    sys.stdout.flush()
    return p.returncode == 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tree", type=Path, default=MLX, help="an MLX source tree")
    ap.add_argument("kernels", nargs="*", metavar="KERNEL.metal")
    args = ap.parse_args(argv)
    tree = Path(os.path.abspath(args.tree))
    kernels = [f"{KERNELS}/{k.removeprefix(KERNELS + '/')}" for k in args.kernels]
    require_clang()
    if not (tree / KERNELS).is_dir():
        die(f"{tree} has no {KERNELS}")
    if not kernels:
        for k in touched_kernels(tree):
            if UNMODELLED.search(k):
                note(
                    f"skipping {k}: the shim does not model MetalPerformancePrimitives"
                )
            else:
                kernels.append(k)
    if not kernels:
        note("no Metal kernel to check")
        return 0

    with tempfile.TemporaryDirectory() as scratch:
        copy = copy_kernels(tree, scratch)
        failed = []
        for k in kernels:
            if not (copy / k).is_file():
                die(f"no kernel {k} in {tree}")
            note(f"checking {k}")
            if not check_kernel(copy, tree, k):
                failed.append(k)
    if failed:
        die(f"the Metal code does not type-check: {' '.join(failed)}")
    note(f"checked {len(kernels)} Metal kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
