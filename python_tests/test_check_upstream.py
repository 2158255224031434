"""make check-upstream: it reports the base's and the series' conflicts with
an upstream main, and changes nothing outside its scratch directory."""

from conftest import ROOT, git, harness, pinned_base

MLX = ROOT / "mlx"


def submodule_state():
    return (
        git(MLX, "for-each-ref", "--format=%(refname) %(objectname)"),
        git(MLX, "worktree", "list", "--porcelain"),
        git(MLX, "status", "--porcelain"),
        git(MLX, "rev-parse", "HEAD"),
    )


def test_on_the_base_itself_nothing_conflicts():
    before = submodule_state()
    out = harness(ROOT, "check-upstream", "--upstream", pinned_base()).stdout
    assert "conflicts in" not in out, out
    assert "go on" in out and "cleanly" in out, out
    assert submodule_state() == before


def test_names_the_files_that_conflict():
    # Upstream's main, as the submodule's URL serves it: the base no longer
    # merges cleanly there, and each conflict names files of the tree.
    before = submodule_state()
    out = harness(ROOT, "check-upstream").stdout
    assert submodule_state() == before
    first = out.splitlines()[0]
    assert first.startswith("==> upstream "), out
    assert "the base (pull request): conflicts in" in out, out
    for line in out.splitlines():
        if ": conflicts in " in line:
            for f in line.split(": conflicts in ")[1].split(" (")[0].split(", "):
                assert f.startswith(("mlx/", "python/")), line
