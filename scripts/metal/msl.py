"""What the Metal tools of scripts/metal/ share: where things are, the clang
that stands in for Apple's Metal compiler, and the rewrite of the three MSL
constructs that C++ for OpenCL does not accept (see rewrite_msl).

Standard library only: check_metal.py runs before any virtualenv exists."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MLX = ROOT / "mlx"
SHIM = Path(__file__).resolve().parent / "shim"
KERNELS = "mlx/backend/metal/kernels"
# The ref that 'make apply' writes at the series' base, in mlx/.
BASE_REF = "refs/patches/upstream-head"

CLANG = os.environ.get("CLANG", "clang++-16")  # Debian package clang-16
# C++ for OpenCL (C++17 with address spaces), the Metal language's model.
CLCPP = ["-x", "clcpp", "-cl-std=clc++2021", "-nostdinc", "-cl-no-stdinc"]
# The warnings of MLX's Metal build (-Wall -Wextra, no C++17/20 extension
# ones), bar what MSL has and C++ lacks: its attributes ([[kernel]],
# [[buffer(0)]], ...) and pragmas, and `const constant`, which is
# `const const __constant` here.
WARNINGS = [
    "-Wall",
    "-Wextra",
    "-Wno-c++17-extensions",
    "-Wno-c++20-extensions",
    "-Wno-unknown-attributes",
    "-Wno-unknown-pragmas",
    "-Wno-duplicate-decl-specifier",
]

_THREADGROUP = re.compile(
    r"^(\s*)threadgroup\s+([^*&()=;,]*?[\w>])\s+(\w+)\s*((?:\[.*\])?)\s*;"
)
_FUNCTION_CONSTANT = re.compile(
    r"^(\s*)(constant\s+\w+\s+\w+\s*\[\[function_constant\(\w+\)\]\]\s*;)"
)
_CONSTANT_MEMBER = re.compile(r"\)(\s*(?:const\s+)?)constant(\s*(?:[{:;]|$))")


def die(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def note(message):
    print(f"==> {message}", flush=True)


def require_clang():
    if shutil.which(CLANG) is None:
        die(f"{CLANG} not found: install Debian's clang-16 or set CLANG to a clang++")


def rewrite_msl(directory):
    """Rewrite in place, on the same lines (so diagnostics keep their line
    numbers), what MSL allows and C++ for OpenCL does not:
     1. threadgroup variables, which OpenCL allows only in kernel functions
        (and MLX's kernels are templates, which OpenCL kernels cannot be),
        become references to threadgroup memory of the same type, numbered
        so that each declaration has its own memory when executed;
     2. function constants, which MSL declares without a value, become extern;
     3. member functions qualified with constant take OpenCL's __constant: the
        const of the constant macro is not allowed on constructors."""
    count = 0

    def threadgroup(m):
        nonlocal count
        count += 1
        indent, type_, name, extent = m.groups()
        return (
            f"{indent}threadgroup {type_} (&{name}){extent} = "
            f"metal::__shim::threadgroup_variable<{type_}{extent}, {count}>();"
        )

    for path in sorted(Path(directory).rglob("*")):
        if path.suffix not in (".h", ".metal"):
            continue
        lines = path.read_text().split("\n")
        for i, line in enumerate(lines):
            line = _THREADGROUP.sub(threadgroup, line, count=1)
            line = _FUNCTION_CONSTANT.sub(r"\1extern \2", line, count=1)
            lines[i] = _CONSTANT_MEMBER.sub(r")\1__constant\2", line, count=1)
        path.write_text("\n".join(lines))


# An include of the tree's own files, by their path from its root.
TREE_INCLUDE = re.compile(r'^\s*#\s*include\s*"(mlx/[^"]*)"', re.M)


def outside_headers(tree):
    """The tree's files outside the kernels that the kernels include,
    directly or not (the TurboQuant codebooks), by their path from the root."""
    tree = Path(tree)
    seen = set()
    todo = [f for f in (tree / KERNELS).rglob("*") if f.suffix in (".h", ".metal")]
    while todo:
        for name in TREE_INCLUDE.findall(todo.pop().read_text()):
            if name in seen or name.startswith(KERNELS + "/"):
                continue
            if (tree / name).is_file():
                seen.add(name)
                todo.append(tree / name)
    return sorted(seen)


def copy_kernels(tree, dest):
    """Copy the kernels of an MLX tree under dest (same relative paths) and
    rewrite them, with the headers outside the kernels that they include;
    returns dest."""
    tree, dest = Path(tree), Path(dest)
    src = tree / KERNELS
    if not src.is_dir():
        die(f"{tree} has no {KERNELS}")
    shutil.copytree(src, dest / KERNELS)
    for name in outside_headers(tree):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(tree / name, dest / name)
    rewrite_msl(dest / KERNELS)
    return dest


def mlx_git(*args):
    return subprocess.run(
        ["git", "-C", str(MLX), *args], capture_output=True, text=True
    )
