"""Check out each series' submodule at the pinned base. Upstream may reach
the base only through a pull-request ref; it is fetched when the clone lacks
the base. Without network, a mirror configured with url.<mirror>.insteadOf
serves."""

from __future__ import annotations

import argparse

from . import core
from .core import Series, die, git, git_ok, git_run, step


def unreachable(s: Series, base: str, detail: str = ""):
    ref = f" that has {s.pull_ref}" if s.pull_ref else ""
    die(
        (detail + "\n" if detail else "")
        + f"cannot get the source of {s.name}/ (commit {base}) from {s.url}.\n"
        f"Offline, point git at a mirror of it{ref}:\n"
        f"    git config --global url.<mirror path or URL>.insteadOf {s.url}\n"
        "    git config --global protocol.file.allow always   # for a mirror on a local path\n"
        "then run 'make' again."
    )


def has_commit(s: Series, sha: str) -> bool:
    return git_ok(s.dir, "cat-file", "-e", f"{sha}^{{commit}}")


def checkout(s: Series):
    base = core.pinned_base(s)
    if not core.checked_out(s):
        step(f"{s.name}: cloning {s.url}")
        # The clone succeeds even when the commit is missing; checking it out may not.
        p = git_run(
            core.ROOT, "submodule", "update", "--init", "--", s.name, check=False
        )
        if not core.checked_out(s):
            unreachable(s, base, p.stderr.strip())
    if not has_commit(s, base):
        if not s.pull_ref:
            unreachable(s, base)
        step(f"{s.name}: fetching {s.pull_ref} for the pinned base {base[:12]}")
        p = git_run(
            s.dir, "fetch", "-q", "origin", f"+{s.pull_ref}:{s.base_ref}", check=False
        )
        if p.returncode != 0:
            unreachable(s, base, p.stderr.strip())
        if not has_commit(s, base):
            die(f"{s.pull_ref} of {s.url} no longer holds {base}")
    head = core.rev(s.dir, "HEAD")
    if head is None or not git(s.dir, "status", "--porcelain"):
        # A fresh clone may sit on upstream's default branch: move it to the base.
        if head is None or not core.is_ancestor(s.dir, base, "HEAD"):
            git(s.dir, "checkout", "-q", "--detach", base)
            step(f"{s.name}: checked out the pinned base {base[:12]}")


def run(argv):
    p = argparse.ArgumentParser(prog="submodule", description=__doc__)
    p.add_argument("series", nargs="*", help="series names (default: all)")
    args = p.parse_args(argv)
    for s in core.by_name(args.series):
        checkout(s)
        step(f"{s.name}: at {git(s.dir, 'rev-parse', '--short', 'HEAD')}")


if __name__ == "__main__":
    core.main(run)
