"""Build the patched mlx Python package in place (mlx/python/mlx) with CMake,
Ninja and ccache, in the ignored build/ directory, and make .venv import it.
The CMake options are those of mlx's setup.py plus the offline ones: on
Linux nothing is downloaded; on macOS the Metal backend is built and MLX's
CMake fetches metal-cpp, json and fmt as it does upstream.

Environment:
  MLX_CUDA=1     also build the CUDA backend (in build/cuda, not build/cpu),
                 offline when 'cuda_deps' has put its sources in build/deps
  MLX_METAL=0    on macOS, build without the Metal backend
  JOBS=N         parallel compile jobs (default: all cores)
  PYTHON=        the Python to build for (default: .venv's); .venv is then
                 left as it is
  MLX_TREE=, BUILD_DIR=   build another checkout of mlx, in another build
                 directory, without pointing .venv at it (check_bisect)
  CMAKE_EXTRA=   more CMake options, e.g. -DFETCHCONTENT_SOURCE_DIR_<NAME>=<dir>"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from . import core
from .core import BUILD, ROOT, die, step

DEPS = BUILD / "deps"
CUDA_SOURCES = ("cccl", "cudnn", "cutlass", "nvtx3")


def metal_compiler() -> bool:
    """Whether Xcode's Metal compiler is there (the command line tools alone
    do not have it)."""
    p = subprocess.run(
        ["xcrun", "-sdk", "macosx", "--find", "metal"], capture_output=True, text=True
    )
    return p.returncode == 0


def cmake_args(tree: Path, py: str, env) -> tuple:
    args = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=ON",
        "-DMLX_BUILD_PYTHON_BINDINGS=ON",
        "-DMLX_BUILD_TESTS=OFF",
        "-DMLX_BUILD_EXAMPLES=OFF",
        "-DMLX_BUILD_BENCHMARKS=OFF",
        "-DMLX_BUILD_GGUF=OFF",
        f"-DFETCHCONTENT_SOURCE_DIR_NANOBIND={DEPS / 'nanobind'}",
        f"-DPython_EXECUTABLE={py}",
        f"-DCMAKE_INSTALL_PREFIX={tree / 'python' / 'mlx'}",
        f"-DMLX_PYTHON_BINDINGS_OUTPUT_DIRECTORY={tree / 'python' / 'mlx'}",
        "-DCMAKE_INSTALL_MESSAGE=NEVER",
    ]
    backend = "cpu"
    if core.MACOS:
        # metal-cpp (and json and fmt, which a Mac has no package of) come
        # from MLX's own FetchContent.
        metal = env.get("MLX_METAL", "1") != "0"
        if metal and not metal_compiler():
            die(
                "no Metal compiler: 'xcrun -sdk macosx --find metal' fails. It comes with "
                "Xcode (not with the command line tools alone; on Xcode 26 also run "
                "'xcodebuild -downloadComponent MetalToolchain'), then "
                "'sudo xcode-select --switch /Applications/Xcode.app'. "
                "Or build the CPU backend only: MLX_METAL=0 make"
            )
        args.append(f"-DMLX_BUILD_METAL={'ON' if metal else 'OFF'}")
        backend = "metal" if metal else "cpu"
    else:
        args += [
            "-DFETCHCONTENT_FULLY_DISCONNECTED=ON",
            f"-DFETCHCONTENT_SOURCE_DIR_JSON={DEPS / 'json'}",
        ]
    # fmt comes from build/deps when 'cuda_deps' put it there, else from
    # Debian's libfmt-dev (Linux) or MLX's FetchContent (macOS).
    if (DEPS / "fmt").is_dir():
        args += [
            "-DUSE_SYSTEM_FMT=OFF",
            f"-DFETCHCONTENT_SOURCE_DIR_FMT={DEPS / 'fmt'}",
        ]
    elif not core.MACOS:
        args.append("-DUSE_SYSTEM_FMT=ON")
    if env.get("MLX_CUDA", "0") == "1":
        backend = "cuda"
        arch = env.get("MLX_CUDA_ARCHITECTURES", "90a-real")
        args += ["-DMLX_BUILD_CUDA=ON", f"-DMLX_CUDA_ARCHITECTURES={arch}"]
        for name in CUDA_SOURCES:
            if (DEPS / name).is_dir():
                args.append(f"-DFETCHCONTENT_SOURCE_DIR_{name.upper()}={DEPS / name}")
    args += shlex.split(env.get("CMAKE_EXTRA", ""))
    return args, backend


def build(tree: Path = None, build_dir: Path = None, python: str = None, out=None):
    """Build tree (default mlx/) in build_dir (default build/<backend>);
    .venv imports the result when it is mlx/ built for .venv's Python."""
    env = os.environ
    tree = tree or env.get("MLX_TREE") or None
    main_tree = tree is None
    tree = Path(tree or core.MLX.dir).resolve()
    py = python or env.get("PYTHON") or str(core.PY)
    if not shutil.which(py):
        die(f"no {py}: run 'make deps' first")
    if not (tree / "setup.py").is_file():
        die(f"{tree} is not checked out: run 'make apply' first")
    args, backend = cmake_args(tree, py, env)
    # The version string of mlx's own setup.py, which carries the commit hash.
    version = subprocess.run(
        [py, "-c", "import setup; print(setup.get_version())"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    args.append(f"-DMLX_VERSION={version}")
    build_dir = Path(build_dir or env.get("BUILD_DIR") or BUILD / backend)

    child = dict(env)
    # Paths relative to the project root let clones share one ccache.
    child.update(CCACHE_BASEDIR=str(ROOT), CCACHE_NOHASHDIR="true")
    # CMake and Ninja from PyPI (on a Mac) live in .venv/bin.
    child["PATH"] = os.pathsep.join([str(core.VENV / "bin"), env.get("PATH", "")])
    cmake = shutil.which("cmake", path=child["PATH"])
    if not cmake:
        die("no cmake: run 'make deps' first")

    step(f"building mlx {version} ({backend}) in {build_dir}")
    build_dir.mkdir(parents=True, exist_ok=True)
    log = build_dir.with_name(build_dir.name + ".cmake.log")
    with open(log, "w") as f:
        configure = [cmake, "-S", tree, "-B", build_dir, "-G", "Ninja", *args]
        p = subprocess.run(
            list(map(str, configure)), stdout=f, stderr=subprocess.STDOUT, env=child
        )
    if p.returncode != 0:
        (out or sys.stdout).write(log.read_text())
        die(f"cmake configure failed (log: {log})")
    jobs = env.get("JOBS") or str(os.cpu_count() or 1)
    # Ninja's progress goes straight to the terminal (or to out).
    opts = dict(
        env=child, stdout=out, stderr=subprocess.STDOUT if out else None, check=True
    )
    subprocess.run(
        [cmake, "--build", str(build_dir), "--target", "install", "-j", jobs], **opts
    )
    install = [cmake, "--install", str(build_dir), "--component", "core_stub"]
    subprocess.run(install, env=child, capture_output=True, check=True)

    # .venv imports the in-place package: a rebuild needs no reinstall.
    if main_tree and not python and not env.get("PYTHON"):
        if core.venv_is_ours():
            site = subprocess.run(
                [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            Path(site, "mlx-turboquant.pth").write_text(f"{tree / 'python'}\n")
            install_mlx_lm(py)
        else:
            step(
                f".venv is {core.VENV.resolve()}, another checkout's: left as it is; "
                f"import this build with PYTHONPATH={tree / 'python'}"
            )
    check = [
        py,
        "-c",
        "import mlx.core as mx; print(mx.__version__, 'at', mx.__file__)",
    ]
    imported = subprocess.run(
        check,
        env={**env, "PYTHONPATH": str(tree / "python")},
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    ).stdout.strip()
    step(f"built mlx {imported}")


def install_mlx_lm(py):
    """.venv's mlx_lm, and its commands (mlx_lm.generate, ...), are the
    patched mlx-lm/ submodule: installed editable, once, without
    dependencies (they come from requirements-model.txt, and mlx must stay
    the patched build)."""
    tree = core.MLX_LM.dir
    if not core.checked_out(core.MLX_LM):
        return
    probe = "import mlx_lm; print(mlx_lm.__file__)"
    p = subprocess.run([py, "-c", probe], capture_output=True, text=True, cwd="/")
    if p.returncode == 0 and Path(p.stdout.strip()).is_relative_to(tree):
        return
    step(f"installing {tree.name}/ into .venv (editable, no dependencies)")
    pip = [py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    p = subprocess.run([*pip, "-e", str(tree)], capture_output=True, text=True)
    if p.returncode != 0:
        die(f"installing {tree.name}/ failed:\n{p.stdout}{p.stderr}")


def run(argv):
    argparse.ArgumentParser(
        prog="build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    build()


if __name__ == "__main__":
    core.main(run)
