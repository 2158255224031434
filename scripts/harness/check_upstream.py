"""Watch upstream: would the base pull request and the MLX series still go on
the newest upstream main? In a scratch repository (build/check-upstream/,
sharing mlx/'s objects), merge the pinned base into upstream's main as the
configured source has it (the submodule's URL, so a mirror that git's
insteadOf names serves too), then apply each patch with a three-way merge,
and report the files that conflict: in the base's merge, and per patch.

Conflicts are settled in favour of the base and of each patch, so that the
later patches are tried on a tree as close to the intended one as can be.
Nothing outside the scratch directory changes (not mlx/, its refs or its
worktrees), and 'make check' does not depend on this step.

    python3 scripts/harness check_upstream [--upstream REV]"""

from __future__ import annotations

import argparse
import shutil
from typing import List

from . import core
from .core import BUILD, git, git_run, step

# The scratch commits' author and committer.
IDENTITY = {
    **core.COMMITTER,
    "GIT_AUTHOR_NAME": core.COMMITTER["GIT_COMMITTER_NAME"],
    "GIT_AUTHOR_EMAIL": core.COMMITTER["GIT_COMMITTER_EMAIL"],
}


def scratch_repo(s: core.Series, where):
    """An empty repository at where that borrows the submodule's objects."""
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    git(where, "init", "-q")
    objects = core.gitdir(s) / "objects"
    (where / ".git" / "objects" / "info" / "alternates").write_text(f"{objects}\n")
    return where


def upstream_main(s: core.Series, repo, wanted):
    """The commit to merge into: wanted, else the main branch of the
    series' URL, else the submodule's last fetched origin/main."""
    if wanted:
        sha = core.rev(s.dir, wanted)
        if not sha:
            core.die(f"no commit {wanted} in {s.name}/")
        return sha, wanted
    p = git_run(repo, "fetch", "-q", "--no-tags", s.url, "main", check=False)
    if p.returncode == 0:
        return git(repo, "rev-parse", "FETCH_HEAD"), f"main of {s.url}"
    sha = core.rev(s.dir, "refs/remotes/origin/main")
    if not sha:
        core.die(f"cannot fetch main from {s.url}, and {s.name}/ has no origin/main")
    step(f"{s.url} is out of reach; using {s.name}/'s origin/main")
    return sha, f"{s.name}/'s origin/main"


def conflicts(repo) -> List[str]:
    out = git(repo, "diff", "--name-only", "--diff-filter=U")
    return out.split() if out else []


def take(repo, side, files):
    """Settle conflicted files with one side's version and stage them."""
    for f in files:
        if git_run(repo, "checkout", side, "--", f, check=False).returncode == 0:
            git(repo, "add", "--", f)
        else:  # deleted on that side
            git_run(repo, "rm", "-q", "--", f, check=False)


def run(argv):
    ap = argparse.ArgumentParser(prog="check_upstream", description=__doc__)
    ap.add_argument("--upstream", help="merge into this commit of mlx/ instead")
    args = ap.parse_args(argv)
    s = core.MLX
    base = core.ensure_checkout(s)
    repo = scratch_repo(s, BUILD / "check-upstream" / s.name)
    main, source = upstream_main(s, repo, args.upstream)
    git(repo, "checkout", "-q", "--detach", main)
    merge_base = git(repo, "merge-base", main, base)
    behind = git(repo, "rev-list", "--count", f"{merge_base}..{main}")
    step(
        f"upstream {main[:12]} ({source}, "
        f"{git(repo, 'log', '-1', '--format=%cs', main)}); the base {base[:12]} "
        f"forked {behind} commits before it"
    )

    p = git_run(
        repo, "merge", "-q", "--no-ff", "--no-edit", base, env=IDENTITY, check=False
    )
    base_conflicts = conflicts(repo)
    if p.returncode != 0 and not base_conflicts:
        core.die(f"merging the base failed:\n{p.stdout}{p.stderr}")
    if base_conflicts:
        take(repo, "--theirs", base_conflicts)
        git(repo, "commit", "-q", "--no-edit", env=IDENTITY)
    report = [("the base (pull request)", base_conflicts, True)]

    for name in core.entries(s):
        p = git_run(
            repo,
            "am",
            "-q",
            "-3",
            "--keep-cr",
            s.patches / name,
            env=IDENTITY,
            check=False,
        )
        if p.returncode == 0:
            report.append((name, [], True))
            continue
        files = conflicts(repo)
        if files:
            take(repo, "--theirs", files)
            git_run(repo, "am", "--continue", env=IDENTITY, check=False)
            if not am_in_progress(repo):
                report.append((name, files, True))
                continue
        git_run(repo, "am", "--skip", check=False)
        report.append((name, files, False))

    clean = True
    for what, files, applied in report:
        if files or not applied:
            clean = False
            where = f"conflicts in {', '.join(files)}" if files else ""
            print(f"{what}: {where}{'' if applied else ' (skipped: does not apply)'}")
    if clean:
        step(f"the base and all {len(report) - 1} patches go on {main[:12]} cleanly")
    else:
        n = sum(1 for _, files, applied in report[1:] if files or not applied)
        step(
            f"{'the base conflicts; ' if base_conflicts else ''}"
            f"{n} of {len(report) - 1} patches conflict (scratch: {repo})"
        )


def am_in_progress(repo) -> bool:
    """Whether git am stopped and waits (its rebase-apply directory exists)."""
    return (repo / ".git" / "rebase-apply").exists()


if __name__ == "__main__":
    core.main(run)
