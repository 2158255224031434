"""Put the sources that the CUDA backend's CMake clones from GitHub (CCCL,
cuDNN frontend, CUTLASS, NVTX) and fmt into build/deps, at the versions
mlx's CMakeLists pin, so that 'MLX_CUDA=1 make build' runs offline. Like
mlx/ itself they come through git, so a mirror works too:
    git config --global url.<mirror>/NVIDIA/cutlass.insteadOf https://github.com/NVIDIA/cutlass.git
Override a pinned version with <NAME>_REF=<tag> (NAME: CCCL, CUDNN,
CUTLASS, NVTX3, FMT), e.g. when a mirror lacks the tag."""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import tarfile

from . import core
from .core import BUILD, die, step

DEPS = BUILD / "deps"
# name: (repository, paths to keep, the CMakeLists that pins it)
SOURCES = {
    "cccl": (
        "https://github.com/NVIDIA/cccl.git",
        ["libcudacxx/include", "cub/cub", "thrust/thrust"],
        "cuda",
    ),
    "cudnn": (
        "https://github.com/NVIDIA/cudnn-frontend.git",
        ["CMakeLists.txt", "cmake", "include", "cudnn_frontend-config.cmake.in"],
        "cuda",
    ),
    "cutlass": ("https://github.com/NVIDIA/cutlass.git", ["include"], "cuda"),
    "nvtx3": ("https://github.com/NVIDIA/NVTX.git", ["c"], "cuda"),
    "fmt": ("https://github.com/fmtlib/fmt.git", [], "top"),
}


def pinned(name: str, cmakelists: str) -> str:
    """The GIT_TAG (or release version) of 'FetchContent_Declare(<name>' in a
    CMakeLists.txt."""
    for block in re.split(r"FetchContent_Declare\(", cmakelists)[1:]:
        words = block.split()
        if not words or words[0] != name:
            continue
        tag = re.search(r"GIT_TAG\s+(\S+)", block)
        if tag:
            return tag.group(1).rstrip(")")
        release = re.search(r"releases/download/([^/\s]+)/", block)
        if release:
            return release.group(1)
    die(f"no version of {name} in mlx's CMakeLists")


def fetch(dest: str, url: str, ref: str, paths):
    """Archive paths of url at ref into build/deps/<dest>."""
    tmp = DEPS / f".clone-{dest}"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(DEPS / dest, ignore_errors=True)
    step(f"{dest}: {url} at {ref}")
    subprocess.run(["git", "clone", "-q", "--bare", url, str(tmp)], check=True)
    tar = subprocess.run(
        ["git", "-C", str(tmp), "archive", "--format=tar", ref, *paths],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(DEPS / dest)
    shutil.rmtree(tmp)


def run(argv):
    argparse.ArgumentParser(
        prog="cuda_deps",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    mlx = core.MLX.dir
    cmake = {"cuda": mlx / "mlx" / "backend" / "cuda" / "CMakeLists.txt"}
    cmake["top"] = mlx / "CMakeLists.txt"
    if not cmake["cuda"].is_file():
        die("mlx/ is not checked out: run 'make apply' first")
    DEPS.mkdir(parents=True, exist_ok=True)
    for name, (url, paths, where) in SOURCES.items():
        ref = os.environ.get(f"{name.upper()}_REF") or pinned(
            name, cmake[where].read_text()
        )
        fetch(name, url, ref, paths)
    # The layout of CCCL's release archive, which mlx expects:
    # include/{cuda,nv,cub,thrust}.
    cccl = DEPS / "cccl"
    (cccl / "include").mkdir()
    for item in (cccl / "libcudacxx" / "include").iterdir():
        item.rename(cccl / "include" / item.name)
    (cccl / "cub" / "cub").rename(cccl / "include" / "cub")
    (cccl / "thrust" / "thrust").rename(cccl / "include" / "thrust")
    for d in ("libcudacxx", "cub", "thrust"):
        shutil.rmtree(cccl / d)
    step(f"CUDA build dependencies are in {DEPS}")


if __name__ == "__main__":
    core.main(run)
