"""The mlx that the tests import is the patched build of this checkout."""

import subprocess
from pathlib import Path

import mlx.core as mx
from conftest import MLX_PATCHES, ROOT, git, pinned_base


def patch_ids(text):
    p = subprocess.run(
        ["git", "patch-id", "--stable"], input=text, capture_output=True, text=True
    )
    return sorted(line.split()[0] for line in p.stdout.splitlines())


def test_imported_mlx_is_this_checkouts_build():
    assert Path(mx.__file__).resolve().is_relative_to(ROOT / "mlx" / "python")


def test_build_is_of_the_current_series():
    mlx = ROOT / "mlx"
    head = git(mlx, "rev-parse", "--short", "HEAD")
    assert mx.__version__.endswith(
        "+" + head
    ), f"mlx {mx.__version__} was not built from mlx/ HEAD {head}: run 'make build'"
    commits = git(mlx, "log", "-p", "--no-merges", f"{pinned_base()}..HEAD")
    names = [
        l.strip()
        for l in (ROOT / MLX_PATCHES / "series").read_text().splitlines()
        if l.strip() and not l.startswith("#")
    ]
    files = "".join((ROOT / MLX_PATCHES / n).read_text() for n in names)
    assert patch_ids(commits + "\n") == patch_ids(files)


def test_gitlink_pins_an_upstream_commit():
    # 'git add -A' stages mlx/ at the series' tip despite 'ignore = all'.
    mlx = ROOT / "mlx"
    committer = git(mlx, "log", "-1", "--format=%cn", pinned_base())
    assert committer != "TurboQuant series", (
        "the gitlink of mlx/ points into the series: restore it with "
        "git update-index --cacheinfo 160000,<base>,mlx"
    )
    assert git(mlx, "rev-parse", "refs/patches/upstream-head") == pinned_base()
