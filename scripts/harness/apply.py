"""Reset each series' submodule to the pinned base and apply the series with
git am on its branch. Refuses, touching nothing, when the submodule has
uncommitted changes or commits that patches/ lacks. A patch that does not
apply is named, the git am is aborted and the tree is left clean at the last
patch that applied. Files whose content the new series leaves as it was keep
their modification time, so a rebuild stays incremental."""

from __future__ import annotations

import argparse
import os
import subprocess

from . import core
from .core import Series, die, git, git_run, step


def blobs(s: Series, commit: str, paths):
    """{path: blob id} at commit, for those of paths that are files there."""
    if not paths:
        return {}
    out = subprocess.run(
        ["git", "-C", str(s.dir), "ls-tree", "-z", commit, "--", *paths],
        capture_output=True,
        check=True,
    ).stdout.decode("utf-8", "surrogateescape")
    result = {}
    for item in out.split("\0"):
        if item:
            meta, path = item.split("\t", 1)
            result[path] = meta.split()[2]
    return result


def changed_files(s: Series, a: str, b: str):
    out = git(s.dir, "diff", "--name-only", "-z", "--no-renames", a, b)
    return [p for p in out.split("\0") if p]


def holds_series(s: Series, base: str) -> bool:
    return (
        not core.apply_failed_marker(s).exists()
        and core.is_ancestor(s.dir, base, "HEAD")
        and core.commit_patch_ids(s, f"{base}..HEAD") == core.file_patch_ids(s)
    )


def guard(s: Series, base: str):
    """Refuse when applying would lose work (ensure_checkout has refused a
    gitlink on a commit of the series)."""
    applied = core.rev(s.dir, s.applied_ref)
    gd = core.gitdir(s)
    if (gd / "rebase-apply").is_dir() or (gd / "rebase-merge").is_dir():
        die(
            f"a git am or rebase is in progress in {s.name}/: finish it or abort it first"
        )
    dirty = git(s.dir, "status", "--porcelain")
    if dirty:
        die(
            f"{s.name}/ has uncommitted changes; commit them and run 'make export', "
            f"or stash them:\n{dirty}"
        )
    # Commits that the last apply made came from patches/; any other commit
    # must be in patches/ now, or it is the user's unexported work.
    known = set(core.file_patch_ids(s))
    not_applied = ["--not", s.applied_ref] if applied else []
    for name in ("HEAD", f"refs/heads/{s.branch}"):
        if core.rev(s.dir, name) and core.is_ancestor(s.dir, base, name):
            ids = core.commit_patch_ids(s, f"{base}..{name}", *not_applied)
            if set(ids) - known:
                die(
                    f"{s.name}/ {name} has commits that are not in {s.rel_patches}; "
                    "run 'make export' first (or drop them)"
                )


def apply(s: Series, if_needed: bool = False):
    base = core.ensure_checkout(s)
    names = core.entries(s)
    if if_needed and holds_series(s, base):
        step(
            f"{s.name}: already holds the {len(names)} patches of {s.rel_patches}series"
        )
        return
    guard(s, base)

    # Modification times of the files the applied series changes.
    kept = {}
    if core.is_ancestor(s.dir, base, "HEAD"):
        files = changed_files(s, base, "HEAD")
        for path, blob in blobs(s, "HEAD", files).items():
            full = s.dir / path
            if full.is_file() and not full.is_symlink():
                st = full.stat()
                kept[path] = (blob, st.st_atime_ns, st.st_mtime_ns)

    step(f"{s.name}: applying {s.rel_patches}series on {s.branch} at {base[:12]}")
    marker = core.apply_failed_marker(s)
    git(s.dir, "checkout", "-q", "-B", s.branch, base)
    git(s.dir, "update-ref", s.base_ref, base)
    git(s.dir, "update-ref", s.applied_ref, base)
    if marker.exists():
        marker.unlink()
    for n, name in enumerate(names):
        path = s.patches / name
        if not path.is_file():
            die(f"{s.rel_patches}series names {name}, which is not in {s.rel_patches}")
        am = [
            "am",
            "-q",
            "--3way",
            "--keep-cr",
            "--committer-date-is-author-date",
            path,
        ]
        p = git_run(s.dir, *am, check=False, env=core.COMMITTER)
        if p.returncode != 0:
            git_run(s.dir, "am", "--abort", check=False)
            marker.touch()
            die(
                f"{(p.stdout + p.stderr).strip()}\n"
                f"patch {name} does not apply. {s.name}/ is left clean after the "
                f"{n} patches before it.\nFix {s.rel_patches}{name} (or rebuild it in "
                f"{s.name}/ and run 'make export'), then run 'make apply' again."
            )
        git(s.dir, "update-ref", s.applied_ref, "HEAD")
    count = int(git(s.dir, "rev-list", "--count", f"{base}..HEAD"))
    if count != len(names):
        die(
            f"applied {len(names)} patches but {s.branch} has {count} commits over the base"
        )

    now = blobs(s, "HEAD", list(kept))
    restored = 0
    for path, (blob, atime, mtime) in kept.items():
        if now.get(path) == blob and (s.dir / path).is_file():
            os.utime(s.dir / path, ns=(atime, mtime))
            restored += 1
    head = git(s.dir, "rev-parse", "--short", "HEAD")
    step(
        f"{s.name}: applied {len(names)} patches, now at {head}; "
        f"{restored} unchanged files kept their modification times"
    )


def run(argv):
    p = argparse.ArgumentParser(prog="apply", description=__doc__)
    p.add_argument(
        "--if-needed",
        action="store_true",
        help="do nothing to a submodule that already holds exactly its series",
    )
    p.add_argument("series", nargs="*", help="series names (default: all)")
    args = p.parse_args(argv)
    for s in core.by_name(args.series):
        apply(s, args.if_needed)


if __name__ == "__main__":
    core.main(run)
