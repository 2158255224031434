"""Shared helpers for the project's tests."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def project(tmp_path):
    """A scratch copy of the project: its own scripts/, patches/ and Makefile,
    and an mlx/ clone that borrows the real one's objects, so tests never
    touch the user's mlx/."""
    proj = tmp_path / "proj"
    proj.mkdir()
    for name in ("scripts", "patches", "python_tests"):
        shutil.copytree(ROOT / name, proj / name)
    shutil.copy(ROOT / "Makefile", proj)
    shutil.copy(ROOT / ".isort.cfg", proj)
    (proj / ".venv").symlink_to(ROOT / ".venv")
    base = pinned_base()
    git(proj, "init", "-q")
    git(ROOT / "mlx", "rev-parse", "--git-dir")  # the real submodule is there
    run(["git", "clone", "-q", "--shared", "--no-checkout", ROOT / "mlx", proj / "mlx"])
    git(proj / "mlx", "checkout", "-q", "--detach", base)
    git(proj, "update-index", "--add", "--cacheinfo", f"160000,{base},mlx")
    return proj
