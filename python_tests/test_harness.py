"""The harness: apply, export and check, in a scratch copy of the project."""

from pathlib import Path

from conftest import git, pinned_base, run


def series(proj):
    lines = (proj / "patches" / "mlx" / "series").read_text().splitlines()
    return [l for l in lines if l.strip() and not l.startswith("#")]


def apply(proj, check=True):
    return run([proj / "scripts" / "apply.sh"], cwd=proj, check=check)


def export(proj, check=True):
    return run([proj / "scripts" / "export.sh"], cwd=proj, check=check)


def patch_bytes(proj):
    return {p.name: p.read_bytes() for p in sorted((proj / "patches" / "mlx").iterdir())}


def test_apply_then_export_changes_no_byte(project):
    before = patch_bytes(project)
    apply(project)
    mlx = project / "mlx"
    assert git(mlx, "rev-parse", "--abbrev-ref", "HEAD") == "turboquant"
    count = git(mlx, "rev-list", "--count", f"{pinned_base()}..HEAD")
    assert int(count) == len(series(project))
    export(project)
    assert patch_bytes(project) == before


def test_patch_names_come_from_subjects(project):
    apply(project)
    subjects = git(project / "mlx", "log", "--reverse", "--format=%s", "HEAD~1..HEAD")
    name = series(project)[-1]
    words = [w for w in subjects.lower().replace("<", " ").split() if w.isalnum()]
    assert all(w in name for w in words), (subjects, name)
    assert not name[0].isdigit()


def test_apply_twice_gives_the_same_commits(project):
    apply(project)
    first = git(project / "mlx", "rev-parse", "HEAD")
    apply(project)
    assert git(project / "mlx", "rev-parse", "HEAD") == first
    assert git(project / "mlx", "status", "--porcelain") == ""


def test_apply_if_needed_keeps_an_applied_tree(project):
    apply(project)
    head = git(project / "mlx", "rev-parse", "HEAD")
    (project / "mlx" / "README.md").write_text("local edit\n")
    run([project / "scripts" / "apply.sh", "--if-needed"], cwd=project)
    assert git(project / "mlx", "rev-parse", "HEAD") == head
    assert (project / "mlx" / "README.md").read_text() == "local edit\n"


def test_apply_refuses_uncommitted_changes(project):
    apply(project)
    readme = project / "mlx" / "README.md"
    readme.write_text("my work\n")
    (project / "mlx" / "new_file.cpp").write_text("// new\n")
    p = apply(project, check=False)
    assert p.returncode != 0
    assert "uncommitted changes" in p.stderr
    assert readme.read_text() == "my work\n"
    assert (project / "mlx" / "new_file.cpp").exists()


def test_apply_refuses_unexported_commits(project):
    apply(project)
    mlx = project / "mlx"
    (mlx / "README.md").write_text("my commit\n")
    git(mlx, "commit", "-qam", "My change")
    mine = git(mlx, "rev-parse", "HEAD")
    p = apply(project, check=False)
    assert p.returncode != 0
    assert "not in patches/" in p.stderr
    assert git(mlx, "rev-parse", "HEAD") == mine
    # Once exported, the commit is part of the series and survives an apply.
    export(project)
    assert "my-change.patch" in series(project)
    apply(project)
    assert (mlx / "README.md").read_text() == "my commit\n"


def test_broken_patch_is_named_and_leaves_a_clean_tree(project):
    apply(project)
    name = series(project)[0]
    path = project / "patches" / "mlx" / name
    good = path.read_text()
    # Change a context line so that the patch no longer fits the base.
    lines = good.splitlines(keepends=True)
    i = next(i for i, l in enumerate(lines) if l.startswith("@@")) + 1
    lines[i] = " this line is not in the base\n"
    path.write_text("".join(lines))
    p = apply(project, check=False)
    assert p.returncode != 0
    assert name in p.stderr
    mlx = project / "mlx"
    assert git(mlx, "status", "--porcelain") == ""
    gitdir = Path(git(mlx, "rev-parse", "--absolute-git-dir"))
    assert not (gitdir / "rebase-apply").exists()
    assert git(mlx, "rev-parse", "HEAD") == pinned_base()
    # A half-applied series is never exported over the good patches.
    e = export(project, check=False)
    assert e.returncode != 0 and "did not apply" in e.stderr
    assert path.read_text() != good
    path.write_text(good)
    apply(project)
    export(project)
    assert path.read_text() == good


def test_unreachable_source_says_how_to_use_a_mirror(project, tmp_path):
    run(["rm", "-rf", project / "mlx"])
    git(project, "config", "-f", ".gitmodules", "submodule.mlx.path", "mlx")
    missing = (tmp_path / "no-such-mirror").as_uri()
    git(project, "config", "-f", ".gitmodules", "submodule.mlx.url", missing)
    p = run([project / "scripts" / "submodule.sh"], cwd=project, check=False)
    assert p.returncode != 0
    assert "insteadOf" in p.stderr and pinned_base() in p.stderr


def test_check_passes_and_catches_an_unlisted_patch(project):
    run([project / "scripts" / "check.sh"], cwd=project)
    (project / "patches" / "mlx" / "stray.patch").write_text("not listed\n")
    p = run([project / "scripts" / "check.sh"], cwd=project, check=False)
    assert p.returncode != 0
    assert "stray.patch is not listed" in p.stderr


def test_check_catches_trailing_whitespace_and_missing_body(project):
    apply(project)
    mlx = project / "mlx"
    (mlx / "README.md").write_text((mlx / "README.md").read_text() + "trailing  \n")
    git(mlx, "commit", "-qam", "Add a line")
    export(project)
    p = run([project / "scripts" / "check.sh"], cwd=project, check=False)
    assert p.returncode != 0
    assert "add-a-line.patch adds trailing whitespace" in p.stderr
    assert "add-a-line.patch has no body" in p.stderr


def test_apply_refuses_a_gitlink_moved_onto_the_series(project):
    apply(project)
    head = git(project / "mlx", "rev-parse", "HEAD")
    git(project, "update-index", "--cacheinfo", f"160000,{head},mlx")
    p = apply(project, check=False)
    assert p.returncode != 0
    assert "points at a commit of the series" in p.stderr and pinned_base() in p.stderr
    assert git(project / "mlx", "rev-parse", "HEAD") == head
