"""Shared helpers for the project's tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from harness import core  # noqa: E402

# The patch files of the MLX series, and the file that orders them.
MLX_PATCHES = Path(core.MLX.rel_patches)
# The Python that runs the harness in the tests: HARNESS_PYTHON=python3.9
# tries the oldest it supports (macOS's command line tools have 3.9).
HARNESS_PYTHON = os.environ.get("HARNESS_PYTHON", "python3")


def pytest_configure(config):
    """DEVICE=cpu or gpu, as upstream's suite reads it, picks the default
    device of this project's tests too."""
    device = os.environ.get("DEVICE")
    if device:
        try:
            import mlx.core as mx
        except ImportError:
            return  # the harness tests need no mlx
        mx.set_default_device(getattr(mx, device))


def run(cmd, cwd=ROOT, check=True):
    """Run a command, capturing text output; fail with it on an unexpected exit."""
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {p.returncode}\n{p.stdout}\n{p.stderr}"
        )
    return p


def git(repo, *args, check=True):
    return run(["git", "-C", str(repo), *args], check=check).stdout.strip()


def pinned_base(root=ROOT):
    return git(root, "ls-files", "-s", "mlx").split()[1]


def harness(proj, *args, check=True, env=None):
    """python3 scripts/harness ARGS in a project copy."""
    cmd = [HARNESS_PYTHON, proj / "scripts" / "harness", *args]
    if env is None:
        return run(cmd, cwd=proj, check=check)
    p = subprocess.run(cmd, cwd=proj, capture_output=True, text=True, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture
def project(tmp_path):
    """A scratch copy of the project: its own scripts/, patches/ and Makefile,
    and clones of mlx/ and mlx-lm/ that borrow the real ones' objects, so
    tests never touch the user's submodules."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("scripts", "patches", "python_tests"):
        shutil.copytree(ROOT / name, proj / name)
    shutil.copy(ROOT / "Makefile", proj)
    shutil.copy(ROOT / ".isort.cfg", proj)
    (proj / ".venv").symlink_to(ROOT / ".venv")
    git(proj, "init", "-q")
    for s in core.SERIES:
        base = git(ROOT, "ls-files", "-s", s.name).split()[1]
        git(ROOT / s.name, "rev-parse", "--git-dir")  # the real submodule is there
        run(
            [
                "git",
                "clone",
                "-q",
                "--shared",
                "--no-checkout",
                ROOT / s.name,
                proj / s.name,
            ]
        )
        git(proj / s.name, "checkout", "-q", "--detach", base)
        git(proj, "update-index", "--add", "--cacheinfo", f"160000,{base},{s.name}")
    return proj
