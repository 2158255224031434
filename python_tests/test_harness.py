"""The harness: apply, export and check, in a scratch copy of the project."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import HARNESS_PYTHON, MLX_PATCHES, git, harness, pinned_base, run


def series(proj):
    lines = (proj / MLX_PATCHES / "series").read_text().splitlines()
    return [l for l in lines if l.strip() and not l.startswith("#")]


def apply(proj, check=True):
    return harness(proj, "apply", check=check)


def export(proj, check=True):
    return harness(proj, "export", check=check)


def patch_bytes(proj):
    return {p.name: p.read_bytes() for p in sorted((proj / MLX_PATCHES).iterdir())}


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
    harness(project, "apply", "--if-needed")
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
    path = project / MLX_PATCHES / name
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
    p = harness(project, "submodule", check=False)
    assert p.returncode != 0
    assert "insteadOf" in p.stderr and pinned_base() in p.stderr


def test_check_passes_and_catches_an_unlisted_patch(project):
    harness(project, "check")
    (project / MLX_PATCHES / "stray.patch").write_text("not listed\n")
    p = harness(project, "check", check=False)
    assert p.returncode != 0
    assert "stray.patch is not listed" in p.stderr


def test_check_catches_trailing_whitespace_and_missing_body(project):
    apply(project)
    mlx = project / "mlx"
    (mlx / "README.md").write_text((mlx / "README.md").read_text() + "trailing  \n")
    git(mlx, "commit", "-qam", "Add a line")
    export(project)
    p = harness(project, "check", check=False)
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


def test_check_refuses_a_gitlink_moved_onto_the_series(project):
    # As 'git add mlx' with the series checked out does: check said that the
    # first patch did not apply.
    apply(project)
    head = git(project / "mlx", "rev-parse", "HEAD")
    git(project, "update-index", "--cacheinfo", f"160000,{head},mlx")
    p = harness(project, "check", check=False)
    assert p.returncode != 0
    assert "points at a commit of the series" in p.stderr and pinned_base() in p.stderr


def test_apply_keeps_modification_times_of_unchanged_files(project):
    apply(project)
    mlx = project / "mlx"
    changed = git(mlx, "diff", "--name-only", f"{pinned_base()}..HEAD").splitlines()
    # One more commit changes a file of the series again; then the series
    # drops it: only that file's content changes.
    keep, edit = changed[0], changed[1]
    (mlx / edit).write_text((mlx / edit).read_text() + "\n")
    git(mlx, "commit", "-qam", "Add a line at the end")
    export(project)
    apply(project)
    for f in (keep, edit):
        os.utime(mlx / f, ns=(10**18, 10**18))
    (project / MLX_PATCHES / "add-a-line-at-the-end.patch").unlink()
    names = series(project)[:-1]
    (project / MLX_PATCHES / "series").write_text("\n".join(names) + "\n")
    apply(project)
    assert (mlx / keep).stat().st_mtime_ns == 10**18
    assert (mlx / edit).stat().st_mtime_ns != 10**18


def test_export_sets_the_author_when_asked(project):
    apply(project)
    harness(project, "export", "--author", "Zoë Contributor <zoe@example.com>")
    first = (project / MLX_PATCHES / series(project)[0]).read_text()
    assert "\nFrom: =?UTF-8?q?Zo=C3=AB=20Contributor?= <zoe@example.com>\n" in first
    apply(project)
    assert git(project / "mlx", "log", "-1", "--format=%an <%ae>") == (
        "Zoë Contributor <zoe@example.com>"
    )
    # Without --author, export keeps what the commits say.
    before = patch_bytes(project)
    export(project)
    assert patch_bytes(project) == before


def reduced_path(tmp_path):
    """A directory holding only git, python3, make, sh and the build tools."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = ["git", "python3", "make", "sh", "cmake", "ninja", "cc", "c++", "ccache"]
    for name in tools:
        # The interpreter itself, not a wrapper (pyenv's shims are bash).
        found = (
            shutil.which(HARNESS_PYTHON) if name == "python3" else shutil.which(name)
        )
        if name == "python3" and HARNESS_PYTHON == "python3":
            found = sys.executable
        if found:
            (bin_dir / name).symlink_to(os.path.realpath(found))
    for name in ("git", "python3", "make", "sh"):
        assert (bin_dir / name).exists(), name
    return {**os.environ, "PATH": str(bin_dir)}


def test_apply_export_check_with_only_git_python_and_make(project, tmp_path):
    apply(project)
    head = git(project / "mlx", "rev-parse", "HEAD")
    before = patch_bytes(project)
    env = reduced_path(tmp_path)

    def make(*targets):
        p = subprocess.run(
            ["make", *targets], cwd=project, env=env, capture_output=True, text=True
        )
        assert p.returncode == 0, f"make {targets}\n{p.stdout}\n{p.stderr}"
        return p

    make("apply")
    assert git(project / "mlx", "rev-parse", "HEAD") == head
    make("export")
    assert patch_bytes(project) == before
    # make check's series checks; deps and check-metal are theirs to test.
    out = make("-o", "deps", "-o", "check-metal", "check").stdout
    assert f"series ok: mlx {len(series(project))} patches" in out


def test_a_linked_venv_is_another_checkouts(project):
    """build writes .venv's .pth and deps installs into .venv only when .venv is
    this checkout's own: a link to another checkout's is left as it is."""
    probe = [
        HARNESS_PYTHON,
        "-c",
        "from harness import core; print(core.venv_is_ours())",
    ]

    def ours():
        return run(probe, cwd=project / "scripts").stdout.strip()

    assert ours() == "False"  # the fixture links the real .venv
    (project / ".venv").unlink()
    (project / ".venv" / "bin").mkdir(parents=True)
    assert ours() == "True"


def test_build_options_on_linux_and_on_a_simulated_mac(monkeypatch):
    """What build asks CMake for on each system (nothing here runs a Mac: the
    macOS branch is exercised by pretending)."""
    from harness import build, core

    tree = Path("/src/mlx")
    monkeypatch.setattr(core, "MACOS", False)
    args, backend = build.cmake_args(tree, "python", {})
    assert backend == "cpu"
    assert "-DFETCHCONTENT_FULLY_DISCONNECTED=ON" in args
    assert not any("MLX_BUILD_METAL" in a for a in args)

    monkeypatch.setattr(core, "MACOS", True)
    monkeypatch.setattr(build, "metal_compiler", lambda: True)
    args, backend = build.cmake_args(tree, "python", {})
    assert backend == "metal" and "-DMLX_BUILD_METAL=ON" in args
    # metal-cpp, json and fmt come from MLX's FetchContent there.
    assert not any("FULLY_DISCONNECTED" in a or "SOURCE_DIR_JSON" in a for a in args)
    assert "-DUSE_SYSTEM_FMT=ON" not in args
    args, backend = build.cmake_args(tree, "python", {"MLX_METAL": "0"})
    assert backend == "cpu" and "-DMLX_BUILD_METAL=OFF" in args
    monkeypatch.setattr(build, "metal_compiler", lambda: False)
    with pytest.raises(core.Failure, match="Xcode"):
        build.cmake_args(tree, "python", {})


def test_devices_to_test_on():
    from harness import test

    assert test.devices({"DEVICES": "cpu gpu"}, "python") == ["cpu", "gpu"]
    # Where mlx has no Metal (or does not import), the CPU only.
    assert test.devices({"PATH": os.environ["PATH"]}, sys.executable) == ["cpu"]
