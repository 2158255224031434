"""What the harness steps share: the project's paths, the series it keeps (as
data), the fixed committer, and the git helpers. Every constant lives here."""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
PATCHES = ROOT / "patches"
MACOS = sys.platform == "darwin"

# Fixed committer, so that applying a series twice gives the same commit ids.
COMMITTER = {
    "GIT_COMMITTER_NAME": "TurboQuant series",
    "GIT_COMMITTER_EMAIL": "turboquant@invalid",
}


@dataclass(frozen=True)
class Series:
    """A patch series on a submodule: patches/<name>/ holds the patch files
    and the file 'series' that orders them; 'make apply' puts them on
    <branch> of the submodule over the commit its gitlink pins."""

    name: str
    title: str  # the first line of the series file says what it is
    url: str  # upstream, as .gitmodules has it
    branch: str
    # A ref that upstream reaches the pinned base through, when its branches
    # do not (a pull request's head); fetched when a clone lacks the base.
    pull_ref: Optional[str] = None
    # In the submodule: the base the series was last applied on, and the tip
    # of the last 'make apply' (commits up to it came from patches/).
    base_ref: str = "refs/patches/upstream-head"
    applied_ref: str = "refs/patches/applied"

    @property
    def dir(self) -> Path:
        return ROOT / self.name

    @property
    def patches(self) -> Path:
        return PATCHES / self.name

    @property
    def series_file(self) -> Path:
        return self.patches / "series"

    @property
    def rel_patches(self) -> str:
        return f"patches/{self.name}/"


MLX = Series(
    name="mlx",
    title="The TurboQuant series on MLX",
    url="https://github.com/ml-explore/mlx.git",
    branch="turboquant",
    pull_ref="refs/pull/3026/head",
)
MLX_LM = Series(
    name="mlx-lm",
    title="The TurboQuant series on mlx-lm",
    url="https://github.com/ml-explore/mlx-lm.git",
    branch="turboquant",
)
# Every series the project keeps, in the order they are applied.
SERIES = [MLX, MLX_LM]


def by_name(names: List[str]) -> List[Series]:
    """The series named (all when none is), or an error naming the known ones."""
    known = {s.name: s for s in SERIES}
    for n in names:
        if n not in known:
            die(f"no series {n}: the series are {', '.join(known)}")
    return [known[n] for n in names] if names else list(SERIES)


class Failure(Exception):
    """A step cannot go on; the message says why and what to do."""


def die(msg: str):
    raise Failure(msg)


def step(msg: str):
    """One line of progress a person can follow."""
    print(f"==> {msg}", flush=True)


def main(run, argv=None):
    """Run a step's function, turning a Failure into 'error: ...' and exit 1."""
    try:
        run(sys.argv[1:] if argv is None else argv)
    except Failure as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        print(
            f"error: {' '.join(map(str, e.cmd))} exited {e.returncode}", file=sys.stderr
        )
        sys.exit(1)


def git_run(repo, *args, check=True, env=None, input=None, capture=True):
    """git -C repo args...; output as text. Fails with git's message when
    check and git fails."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    p = subprocess.run(
        ["git", "-C", str(repo), *map(str, args)],
        capture_output=capture,
        text=True,
        env=full_env,
        input=input,
    )
    if check and p.returncode != 0:
        err = (p.stderr or "").strip()
        die(
            f"git {' '.join(map(str, args))} failed in {repo}"
            + (f":\n{err}" if err else "")
        )
    return p


def git(repo, *args, **kw) -> str:
    """git's standard output, without the final newline."""
    return git_run(repo, *args, **kw).stdout.rstrip("\n")


def git_ok(repo, *args) -> bool:
    return git_run(repo, *args, check=False).returncode == 0


def rev(repo, name: str) -> Optional[str]:
    """The commit id of name in repo, or None."""
    p = git_run(repo, "rev-parse", "-q", "--verify", f"{name}^{{commit}}", check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def is_ancestor(repo, a: str, b: str) -> bool:
    return git_ok(repo, "merge-base", "--is-ancestor", a, b)


def venv_is_ours() -> bool:
    """.venv is this checkout's own, not a link to another checkout's, which
    steps here must not change (its packages, its import of mlx)."""
    return not VENV.exists() or VENV.resolve().parent == ROOT.resolve()


def checked_out(s: Series) -> bool:
    return (s.dir / ".git").exists()


def gitdir(s: Series) -> Path:
    return Path(git(s.dir, "rev-parse", "--absolute-git-dir"))


def apply_failed_marker(s: Series) -> Path:
    """Left by an apply that stopped at a patch; export refuses while it exists."""
    return gitdir(s) / "turboquant-apply-failed"


def pinned_base(s: Series) -> str:
    """The commit the project's gitlink pins (HEAD's, or the index's before the
    first commit): the one source of truth for the base."""
    for line in git(ROOT, "ls-files", "-s", "--", s.name).splitlines():
        mode, sha = line.split()[:2]
        if mode == "160000":
            return sha
    die(f"no gitlink for {s.name}/ in {ROOT}")


def entries(s: Series) -> List[str]:
    """The patch names of the series file, in order (comments and blank lines
    dropped)."""
    if not s.series_file.is_file():
        die(f"missing {s.series_file.relative_to(ROOT)}")
    names = []
    for line in s.series_file.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return names


def _patch_ids(data: bytes) -> List[str]:
    p = subprocess.run(["git", "patch-id", "--stable"], input=data, capture_output=True)
    return [line.split()[0].decode() for line in p.stdout.splitlines() if line.strip()]


def commit_patch_ids(s: Series, *revs: str) -> List[str]:
    """Sorted stable patch-ids of the commits that the git log arguments name."""
    cmd = ["git", "-C", str(s.dir), "log", "-p", "--no-merges", "--format=commit %H"]
    log = subprocess.run([*cmd, *revs], capture_output=True, check=True).stdout
    return sorted(_patch_ids(log + b"\n"))


def file_patch_ids(s: Series) -> List[str]:
    """Sorted stable patch-ids of the series' patch files."""
    ids = []
    for name in entries(s):
        path = s.patches / name
        if path.is_file():
            ids += _patch_ids(path.read_bytes())
    return sorted(ids)


def file_subjects(s: Series) -> set:
    """The subjects of the series' patch files (folded lines joined)."""
    subjects = set()
    for name in entries(s):
        path = s.patches / name
        if path.is_file():
            message = email.message_from_bytes(path.read_bytes())
            subject = re.sub(r"\s+", " ", str(message.get("Subject", ""))).strip()
            subjects.add(re.sub(r"^\[PATCH[^\]]*\] ", "", subject))
    return subjects


def refuse_gitlink_on_series(s: Series, base: str):
    """Dies when the pinned base is itself a commit of the series (the
    submodule added in the project with the series checked out), by its
    patch-id or its subject, naming the first commit below it that is not one
    of the series': the base to restore."""
    subjects, known = file_subjects(s), set(file_patch_ids(s))

    def in_series(commit):
        subject = git(s.dir, "log", "-1", "--format=%s", commit)
        return subject in subjects or bool(
            set(commit_patch_ids(s, "-1", commit)) & known
        )

    if not in_series(base):
        return
    below = base
    while below and in_series(below):
        below = rev(s.dir, f"{below}^")
    die(
        f"the project's gitlink for {s.name}/ points at a commit of the series, "
        f"not at the base. Restore it:\n"
        f"    git update-index --cacheinfo 160000,{below},{s.name}"
    )


def ensure_checkout(s: Series) -> str:
    """The pinned base, with the submodule checked out and holding it; dies
    if the gitlink pins a commit of the series instead."""
    base = pinned_base(s)
    if not (checked_out(s) and git_ok(s.dir, "cat-file", "-e", f"{base}^{{commit}}")):
        from . import submodule

        submodule.checkout(s)
    refuse_gitlink_on_series(s, base)
    return base


def slug(name: str) -> str:
    """A file name as 'git format-patch' writes it, less the number."""
    return re.sub(r"^[0-9]*-", "", name).lower()
