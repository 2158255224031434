"""Lint each series without touching its submodule: every listed patch exists
once and every patch file is listed and ends with a newline; in a scratch
worktree each patch applies exactly (no 3-way merge) in order, has a subject
and a body, adds no trailing whitespace, and leaves its changed C++ and
Python lines formatted as MLX's .clang-format, black and isort (profile
black) want. The codebooks in the MLX series are the solver's. The harness's
own Python is checked with black and isort too."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter

from . import core
from .core import ROOT, Series, die, git, git_run, step

VENV_BIN = core.VENV / "bin"
CLANG_FORMAT_EXTENSIONS = "c,h,cpp,cu,cuh,metal"


def tool(cmd, cwd):
    """Run a linter; (ok, its output)."""
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True)
    return p.returncode == 0, (p.stdout + p.stderr).strip()


def head_lines(text: str, n: int) -> str:
    return "\n".join(text.splitlines()[:n])


class Worktree:
    """A scratch worktree of the submodule at a commit, removed afterwards."""

    def __init__(self, s: Series, commit: str, where):
        self.s, self.commit, self.path = s, commit, where / s.name

    def __enter__(self):
        if self.path.exists():
            shutil.rmtree(self.path)
        git(self.s.dir, "worktree", "prune")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        git(self.s.dir, "worktree", "add", "-q", "--detach", self.path, self.commit)
        return self.path

    def __exit__(self, *exc):
        git_run(self.s.dir, "worktree", "remove", "--force", self.path, check=False)


def check_files(s: Series, names, bad):
    for name, n in Counter(names).items():
        if n > 1:
            bad(f"listed more than once in {s.rel_patches}series: {name}")
    for f in sorted(s.patches.glob("*.patch")):
        if f.name not in names:
            bad(f"{f.name} is not listed in {s.rel_patches}series")
        if not f.read_bytes().endswith(b"\n"):
            bad(f"{f.name} does not end with a newline")


def check_patch(tree, name, bad):
    """The commit at tree's HEAD, just made from patch name."""
    if not git(tree, "log", "-1", "--format=%s"):
        bad(f"{name} has no subject")
    if not git(tree, "log", "-1", "--format=%b").strip():
        bad(f"{name} has no body saying why it exists")
    p = git_run(tree, "diff", "--check", "HEAD~1", "HEAD", check=False)
    if p.returncode != 0:
        bad(f"{name} adds trailing whitespace:\n{head_lines(p.stdout, 5)}")
    ok, out = tool(
        [
            VENV_BIN / "git-clang-format",
            "--binary",
            VENV_BIN / "clang-format",
            "--quiet",
            f"--extensions={CLANG_FORMAT_EXTENSIONS}",
            "--diff",
            "HEAD~1",
            "HEAD",
        ],
        tree,
    )
    if not ok:
        bad(
            f"{name}: changed C++ lines are not clang-format clean:\n{head_lines(out, 40)}"
        )
    py = git(
        tree, "diff", "--name-only", "--diff-filter=AM", "HEAD~1", "HEAD", "--", "*.py"
    )
    py = py.splitlines()
    if py:
        if not tool([VENV_BIN / "black", "-q", "--check", *py], tree)[0]:
            bad(f"{name}: Python is not black clean")
        # The tree's own settings (and packages): not this project's .isort.cfg.
        isort = [VENV_BIN / "isort", "-q", "--settings-path", tree, "--src", tree]
        isort += ["--profile", "black", "--check-only", *py]
        if not tool(isort, tree)[0]:
            bad(f"{name}: Python imports are not isort clean")


def check(s: Series, bad) -> int:
    base = core.ensure_checkout(s)
    names = core.entries(s)
    step(f"{s.name}: checking the {len(names)} patches of {s.rel_patches}series")
    check_files(s, names, bad)
    with Worktree(s, base, core.BUILD / "check") as tree:
        for name in names:
            path = s.patches / name
            if not path.is_file():
                bad(
                    f"{s.rel_patches}series names {name}, which is not in {s.rel_patches}"
                )
                continue
            p = git_run(
                tree, "am", "-q", "--keep-cr", path, check=False, env=core.COMMITTER
            )
            if p.returncode != 0:
                bad(
                    f"{name} does not apply exactly: {head_lines(p.stdout + p.stderr, 3)}"
                )
                git_run(tree, "am", "--abort", check=False)
                break
            check_patch(tree, name, bad)
        if s is core.MLX:
            codebooks = [
                core.PY,
                ROOT / "scripts" / "turbo_codebooks.py",
                "--check",
                tree,
            ]
            ok, out = tool(codebooks, ROOT)
            if not ok:
                bad(
                    f"the series' TurboQuant codebooks differ from the solver's:\n{out}"
                )
    return len(names)


def check_harness(bad):
    dirs = [ROOT / "scripts", ROOT / "python_tests"]
    if not tool([VENV_BIN / "black", "-q", "--check", *dirs], ROOT)[0]:
        bad("the harness's Python is not black clean")
    isort = [VENV_BIN / "isort", "-q", "--settings-path", ROOT, "--check-only", *dirs]
    if not tool(isort, ROOT)[0]:
        bad("the harness's Python imports are not isort clean")


def run(argv):
    p = argparse.ArgumentParser(prog="check", description=__doc__)
    p.add_argument("series", nargs="*", help="series names (default: all)")
    args = p.parse_args(argv)
    problems = []

    def bad(msg):
        print(f"check: {msg}", file=sys.stderr, flush=True)
        problems.append(msg)

    counts = [f"{s.name} {check(s, bad)} patches" for s in core.by_name(args.series)]
    check_harness(bad)
    if problems:
        die(f"the series has {len(problems)} problems (above)")
    step(f"series ok: {', '.join(counts)}")


if __name__ == "__main__":
    core.main(run)
