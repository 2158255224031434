"""Rewrite patches/<series>/ and its series file from the commits on the
submodule since the base. The output is normalized so that exporting an
unchanged series changes no byte. The patches keep their commits' author
unless --author (or PATCH_AUTHOR) names another, e.g. the contributor who
sends them upstream."""

from __future__ import annotations

import argparse
import email.utils
import os
import tempfile
from pathlib import Path

from . import core
from .core import Series, die, git, git_run, step

FORMAT_PATCH = [
    "format-patch",
    "-q",
    # The parent's id says nothing here and would churn every patch file.
    "--zero-commit",
    "--full-index",
    "--no-signature",
    "--no-stat",
    "--keep-subject",
    "--no-numbered",
    "--no-cover-letter",
    "--filename-max-length=100",
]


def from_header(s: Series, author: str) -> bytes:
    """The From: header that git format-patch writes for author 'Name <email>'
    (encoded and folded as git does it, so a re-export changes no byte)."""
    name, addr = email.utils.parseaddr(author)
    if not name or "@" not in addr:
        die(f"--author wants 'Name <email>', not {author!r}")
    ident = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": addr}
    ident["GIT_AUTHOR_DATE"] = "@0 +0000"
    ident.update(core.COMMITTER)
    # A commit of one file by that author: git skips empty ones.
    blob = git(s.dir, "hash-object", "-w", "--stdin", input="author\n")
    tree = git(s.dir, "mktree", input=f"100644 blob {blob}\tauthor\n")
    commit = git(s.dir, "commit-tree", tree, "-m", "author", env=ident)
    patch = git_run(s.dir, "format-patch", "--stdout", "-1", commit, capture=True)
    return header_lines(patch.stdout.encode())[1]


def header_lines(patch: bytes):
    """The lines of a format-patch file, and the slice of its From: header
    (with its folded lines) in them."""
    lines = patch.split(b"\n")
    for i, line in enumerate(lines):
        if line == b"":
            break  # end of the header
        if line.startswith(b"From: "):
            j = i + 1
            while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
                j += 1
            return lines, b"\n".join(lines[i:j]), (i, j)
    die("a patch written by git format-patch has no From: header")


def set_author(patch: bytes, header: bytes) -> bytes:
    """Replace the From: header of a format-patch file."""
    lines, _, (i, j) = header_lines(patch)
    lines[i:j] = [header]
    return b"\n".join(lines)


def export(s: Series, author: str = ""):
    if not core.checked_out(s):
        die(f"{s.name}/ is not checked out")
    if core.apply_failed_marker(s).exists():
        die(
            "the last 'make apply' stopped at a patch that did not apply; exporting now "
            "would drop it and the patches after it. Fix it and run 'make apply' first."
        )
    if git(s.dir, "status", "--porcelain", "--untracked-files=no"):
        die(
            f"{s.name}/ has uncommitted changes: commit them first (they would not be exported)"
        )
    base = core.rev(s.dir, s.base_ref) or core.pinned_base(s)
    if not core.is_ancestor(s.dir, base, "HEAD"):
        die(f"{s.name}/ HEAD does not descend from the base {base}")
    if git(s.dir, "rev-list", "--merges", f"{base}..HEAD"):
        die("the series must not contain merge commits")
    header = from_header(s, author) if author else None
    step(f"{s.name}: exporting the commits over {base[:12]} to {s.rel_patches}")

    with tempfile.TemporaryDirectory() as tmp:
        git(s.dir, *FORMAT_PATCH, "-o", tmp, f"{base}..HEAD")
        files = {}
        for f in sorted(Path(tmp).glob("*.patch")):
            name = core.slug(f.name)
            if name in files:
                die(f"two patches are named {name}: give one of them another subject")
            data = f.read_bytes()
            files[name] = set_author(data, header) if header else data

    s.patches.mkdir(parents=True, exist_ok=True)
    for old in s.patches.glob("*.patch"):
        old.unlink()
    for name, data in files.items():
        (s.patches / name).write_bytes(data)
    lines = [
        f"# {s.title}, in the order 'make apply' applies it.",
        f"# Written by 'make export' from the commits on {s.name}/; one file name per line.",
        *files,
    ]
    s.series_file.write_text("\n".join(lines) + "\n")
    step(f"{s.name}: exported {len(files)} patches")


def run(argv):
    p = argparse.ArgumentParser(prog="export", description=__doc__)
    p.add_argument(
        "--author",
        default=os.environ.get("PATCH_AUTHOR", ""),
        help="'Name <email>' for every patch's From: (default: the commits' author)",
    )
    p.add_argument("series", nargs="*", help="series names (default: all)")
    args = p.parse_args(argv)
    for s in core.by_name(args.series):
        export(s, args.author)


if __name__ == "__main__":
    core.main(run)
