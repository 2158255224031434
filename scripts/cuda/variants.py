#!/usr/bin/env python3
"""Build the checkers that a lease times and checks side by side: the
series' kernels and the parked variants of results/, each a diff (or a chain
of diffs) on the series.

`device.sh decode` (and `first`, beside its build) times every time-only
checker carried in build/device/variants/ (time_NAME, built with
-DQSDPA_TIME_ONLY), and `device.sh check` and `first` run every full checker
carried as build/device/check_* (check_quantized_sdpa is the series'). Those
are compiled here, where nvcc is, since a lease's minutes are short; they
are not kept between sessions, so this rebuilds them from the diffs:

- each variant's tree, build/device/trees/NAME: the headers the checker
  includes from mlx/ (as the series is checked out there), the checker and
  the CUDA executor's shim, with the variant's diffs applied in turn (a diff
  that does not apply is named, and its tree removed);
- its time-only checker, build/device/variants/time_NAME;
- with --full, its full checker, build/device/check_NAME
  (check_quantized_sdpa for the series);
- with --executor, its smoke checks under the CPU executor of the CUDA code
  (scripts/cuda/cuda_run.py --dims smoke, the tree's checker and shim).

    variants.py                       every variant, time-only checkers
    variants.py base nobranch         those only
    variants.py --full --executor     also the full checkers and the checks
    variants.py --list                the variants and their diffs
    variants.py --dry-run             the commands, without running them
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from cuda_run import HEADERS  # noqa: E402 (the headers the checker includes)

CHECKER = "scripts/cuda/check_quantized_sdpa.cu"
SHIM = "scripts/cuda/run/cuda_shim.h"


def parked(name):
    """A parked decode diff of results/."""
    return f"results/cuda_decode_{name}.diff"


# The variants a lease times, each the diffs of results/ applied in turn on
# the series (results/cuda_decode_nobranch.txt and
# results/cuda_decode_fixed_cost.txt say what each changes).
NOBRANCH_DP4A = [parked("nobranch"), parked("dp4a")]
ENDS = [parked("merge_loads"), parked("first_tile"), parked("partials")]
VARIANTS = {
    "base": [],
    "nobranch": NOBRANCH_DP4A[:1],
    "nobranch_dp4a": NOBRANCH_DP4A,
    **{name: [parked(name)] for name in ("merge_loads", "first_tile", "partials")},
    "ends": ENDS,
    "all": NOBRANCH_DP4A + ENDS,
}

NVCC = [
    "nvcc",
    "-std=c++20",
    "-O3",
    "-arch=sm_90a",
    "-diag-suppress",
    "128,177",
]


class VariantError(Exception):
    pass


def git(tree, *args):
    return subprocess.run(
        ["git", "-C", str(tree), *args], capture_output=True, text=True
    )


def make_tree(name, diffs, mlx, out):
    """build/device/trees/NAME (under `out`): the checker's files from the
    series in `mlx` and the project, with `diffs` applied in turn; its path.
    The tree is a repository of its own, so that `git apply` patches it and
    not the project around it, and `git diff` shows what the variant
    changes."""
    tree = out / "trees" / name
    shutil.rmtree(tree, ignore_errors=True)
    try:
        for rel, base in [(h, mlx) for h in HEADERS] + [(CHECKER, ROOT), (SHIM, ROOT)]:
            src = base / rel
            if not src.is_file():
                raise VariantError(f"{name}: {src} is missing (is the series applied?)")
            (tree / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / rel)
        for args in (
            ["init", "-q"],
            ["add", "-A"],
            ["-c", "user.name=variants", "-c", "user.email=variants@localhost"]
            + ["commit", "-q", "-m", "the series"],
        ):
            r = git(tree, *args)
            if r.returncode:
                raise VariantError(f"{name}: git {args[0]}: {r.stderr.strip()}")
        for diff in diffs:
            r = git(tree, "apply", str(ROOT / diff))
            if r.returncode:
                raise VariantError(
                    f"{name}: {diff} does not apply to the series: {r.stderr.strip()}"
                )
    except VariantError:
        shutil.rmtree(tree, ignore_errors=True)
        raise
    return tree


def commands(name, tree, out, full):
    """The nvcc commands of a variant's checkers."""
    src = str(tree / CHECKER)
    cmds = [
        NVCC
        + ["-DQSDPA_TIME_ONLY", "-I", str(tree), src]
        + ["-o", str(out / "variants" / f"time_{name}")]
    ]
    if full:
        check = "check_quantized_sdpa" if name == "base" else f"check_{name}"
        cmds.append(NVCC + ["-I", str(tree), src, "-o", str(out / check)])
    return cmds


def executor_command(name, tree):
    """The smoke checks of a variant under the CPU executor of the CUDA code."""
    return [
        sys.executable,
        str(HERE / "cuda_run.py"),
        "--tree",
        str(tree),
        "--checker",
        str(tree / CHECKER),
        "--shim",
        str(tree / SHIM),
        "--dims",
        "smoke",
        "--build-dir",
        str(ROOT / "build" / "cuda-run" / name),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("names", nargs="*", help="variants (all if none)")
    ap.add_argument("--full", action="store_true", help="also the full checkers")
    ap.add_argument(
        "--executor", action="store_true", help="also the smoke checks on the CPU"
    )
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--mlx", type=Path, default=ROOT / "mlx", help="the series")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "device")
    args = ap.parse_args(argv)

    unknown = [n for n in args.names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    names = args.names or list(VARIANTS)
    if args.list:
        for name in names:
            print(name, " ".join(VARIANTS[name]) or "(the series)")
        return 0
    if not args.dry_run and not shutil.which("nvcc"):
        print("variants.py: nvcc is not on PATH", file=sys.stderr)
        return 1

    (args.out / "variants").mkdir(parents=True, exist_ok=True)
    for name in names:
        try:
            tree = make_tree(name, VARIANTS[name], args.mlx, args.out)
        except VariantError as e:
            print(f"variants.py: {e}", file=sys.stderr)
            return 1
        cmds = commands(name, tree, args.out, args.full)
        if args.executor:
            cmds.append(executor_command(name, tree))
        for cmd in cmds:
            print("+", " ".join(cmd), flush=True)
            if not args.dry_run and subprocess.run(cmd).returncode:
                print(f"variants.py: {name}: failed", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
