"""scripts/cuda/variants.py, which builds the checkers a lease times side by
side: every parked variant still applies to the series, a diff that does not
is named and leaves no tree, and each variant gets the checkers device.sh
looks for. (Compiling them takes nvcc and minutes: not here.)"""

import subprocess
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "cuda"))
import variants  # noqa: E402

MLX = ROOT / "mlx"
QSDPA = "mlx/backend/cuda/quantized_sdpa.cuh"


@pytest.fixture(autouse=True)
def series():
    if not (MLX / QSDPA).is_file():
        pytest.fail("mlx/ holds no series: run `make apply` first")


def test_the_series_tree_is_the_series(tmp_path):
    tree = variants.make_tree("base", [], MLX, tmp_path)
    assert tree == tmp_path / "trees" / "base"
    for rel in variants.HEADERS:
        assert (tree / rel).read_bytes() == (MLX / rel).read_bytes()
    for rel in (variants.CHECKER, variants.SHIM):
        assert (tree / rel).read_bytes() == (ROOT / rel).read_bytes()
    assert variants.git(tree, "status", "--porcelain").stdout == ""


@pytest.mark.parametrize("name", sorted(variants.VARIANTS))
def test_every_parked_variant_applies_to_the_series(tmp_path, name):
    diffs = variants.VARIANTS[name]
    tree = variants.make_tree(name, diffs, MLX, tmp_path)
    changed = variants.git(tree, "diff", "--name-only").stdout.split()
    if diffs:
        assert QSDPA in changed
        assert (tree / QSDPA).read_bytes() != (MLX / QSDPA).read_bytes()
    else:
        assert changed == []


def test_a_diff_that_does_not_apply_is_named_and_leaves_no_tree(tmp_path):
    bad = tmp_path / "bad.diff"
    bad.write_text(
        f"--- a/{QSDPA}\n+++ b/{QSDPA}\n@@ -1,1 +1,1 @@\n"
        "-no such line in the series\n+a variant\n"
    )
    with pytest.raises(variants.VariantError, match="bad.diff does not apply"):
        variants.make_tree("bad", [str(bad)], MLX, tmp_path / "out")
    assert not (tmp_path / "out" / "trees" / "bad").exists()


def test_each_variant_gets_the_checkers_device_sh_runs(tmp_path):
    tree = tmp_path / "trees" / "nobranch"
    timed, full = variants.commands("nobranch", tree, tmp_path, full=True)
    assert "-DQSDPA_TIME_ONLY" in timed and "-DQSDPA_TIME_ONLY" not in full
    for cmd in (timed, full):
        assert cmd[cmd.index("-I") + 1] == str(tree)
        assert str(tree / variants.CHECKER) in cmd
    # device.sh decode times build/device/variants/time_*, and check runs
    # build/device/check_quantized_sdpa (the series') and check_* of others.
    assert timed[-1] == str(tmp_path / "variants" / "time_nobranch")
    assert full[-1] == str(tmp_path / "check_nobranch")
    _, series = variants.commands("base", tree, tmp_path, full=True)
    assert series[-1] == str(tmp_path / "check_quantized_sdpa")
    assert len(variants.commands("base", tree, tmp_path, full=False)) == 1


def run_variants(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cuda" / "variants.py"), *args],
        capture_output=True,
        text=True,
    )


def test_dry_run_prints_every_variants_commands(tmp_path):
    p = run_variants("--dry-run", "--executor", "--out", str(tmp_path))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    for name in variants.VARIANTS:
        assert any(line.endswith(f"variants/time_{name}") for line in lines)
        assert any("cuda_run.py" in line and f"trees/{name} " in line for line in lines)
    assert not list((tmp_path / "variants").iterdir())


def test_an_unknown_variant_is_refused(tmp_path):
    p = run_variants("--dry-run", "nosuch", "--out", str(tmp_path))
    assert p.returncode == 2 and "unknown variants ['nosuch']" in p.stderr
