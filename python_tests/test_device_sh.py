"""Functions of scripts/cuda/device.sh that edit or read files, run here
(the device itself is not needed for them)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICE_SH = ROOT / "scripts" / "cuda" / "device.sh"
CUDA_LISTS = Path("mlx", "mlx", "backend", "cuda", "CMakeLists.txt")


def function(name):
    """device.sh's definition of the function `name`."""
    lines = DEVICE_SH.read_text().splitlines()
    start = lines.index(f"{name}() {{")
    end, heredoc = start, None
    while heredoc or lines[end] != "}":
        end += 1
        if heredoc:
            heredoc = None if lines[end] == heredoc else heredoc
        elif m := re.search(r"<<-?'?(\w+)'?\s*$", lines[end]):
            heredoc = m.group(1)
    return "\n".join(lines[start : end + 1])


def run_function(name, cwd, *args, env=None):
    """Runs device.sh's function `name` alone, with `args`, in `cwd`."""
    return subprocess.run(
        [
            "bash",
            "-euo",
            "pipefail",
            "-c",
            f'{function(name)}\n{name} "$@"',
            name,
            *args,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def sources(lists):
    """The files a CMakeLists.txt lists, in order."""
    tag = "${CMAKE_CURRENT_SOURCE_DIR}/"
    return [l.split(tag, 1)[1] for l in lists.splitlines() if tag in l]


def other_lines(lists):
    return [l for l in lists.splitlines() if "${CMAKE_CURRENT_SOURCE_DIR}/" not in l]


def test_sdpa_first_lists_quantized_sdpa_first_once(tmp_path):
    """quantized_sdpa.cu and the files of its kernels (quantized_sdpa_d64.cu,
    ...), the longest of the build to compile, go first."""
    series_lists = ROOT / CUDA_LISTS
    if not series_lists.exists():
        pytest.fail("mlx/ has no CUDA backend: apply the series first")
    lists = tmp_path / CUDA_LISTS
    lists.parent.mkdir(parents=True)
    before = series_lists.read_text()
    lists.write_text(before)

    run_function("sdpa_first", tmp_path)
    after = lists.read_text()
    moved = [n for n in sources(before) if re.fullmatch(r"quantized_sdpa\w*\.cu", n)]
    assert "quantized_sdpa.cu" in moved
    # The same sources (and every other line), those first.
    assert sources(after) == moved + [n for n in sources(before) if n not in moved]
    assert other_lines(after) == other_lines(before)

    # A second run (a refresh of the same tree) changes nothing.
    run_function("sdpa_first", tmp_path)
    assert lists.read_text() == after


def test_sass_of_takes_the_functions_a_name_starts(tmp_path):
    # cuobjdump -sass's layout: a header line a function, then its code.
    dump = (
        "\tcode for sm_90a\n"
        "\t\tFunction : _Z5otherv\n"
        "        /*0000*/                   NOP ;\n"
        "\t\tFunction : _Z4passIiEvT_\n"
        "        /*0000*/                   HMMA.16816.F32 R0, R4, R8, R0 ;\n"
        "\t\tFunction : _Z4passIfEvT_\n"
        "        /*0000*/                   EXIT ;\n"
    )
    fake = tmp_path / "cuobjdump"
    fake.write_text(f"#!/bin/sh\ncat <<'EOF'\n{dump}EOF\n")
    fake.chmod(0o755)
    out = run_function(
        "sass_of",
        tmp_path,
        "program",
        "_Z4passIiE",
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )
    assert out.splitlines() == [
        "\t\tFunction : _Z4passIiEvT_",
        "        /*0000*/                   HMMA.16816.F32 R0, R4, R8, R0 ;",
    ]


def test_quick_qmm_stubs_keep_the_sources_times(tmp_path):
    """The quick build's stubs of the naive qmm kernels keep the times of the
    files they replace: a refresh unpacks and stubs them again, and a newer
    stub made ninja compile it again."""
    qmm = tmp_path / "mlx/mlx/backend/cuda/quantized/qmm"
    qmm.mkdir(parents=True)
    (tmp_path / "build").mkdir()
    original = "// kernels\n#include <x>\nQMM_NAIVE_GPU(16, true)\n"
    source = qmm / "qmm_impl_naive_m16_k.cu"
    env = {"QUICK_QMM": "1", "PATH": "/usr/bin:/bin"}
    for _ in range(2):  # the build, then a refresh of the unpacked tree
        source.write_text(original)
        os.utime(source, (1_700_000_000, 1_700_000_000))
        run_function("quick_qmm", tmp_path, env=env)
        stub = source.read_text()
        assert "is a stub in this build" in stub
        assert "template void qmm_impl_naive<16, true>(" in stub
        assert source.stat().st_mtime == 1_700_000_000
    assert (tmp_path / "build/.quick-qmm").exists()
    # A stub found in place is left as it is.
    run_function("quick_qmm", tmp_path, env=env)
    assert source.read_text() == stub


def test_profiled_checker_is_the_series_then_another_then_none(tmp_path):
    def profiled():
        return run_function("profiled_checker", tmp_path).strip()

    assert profiled() == ""
    device = tmp_path / "build" / "device"
    device.mkdir(parents=True)
    assert profiled() == ""
    other = device / "check_dp4a"
    other.write_text("")
    assert profiled() == ""  # not executable
    other.chmod(0o755)
    assert profiled() == "build/device/check_dp4a"
    series = device / "check_quantized_sdpa"
    series.write_text("")
    series.chmod(0o755)
    assert profiled() == "build/device/check_quantized_sdpa"


def test_each_bench_step_names_one_of_the_benchmarks_timings(tmp_path):
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from bench_speed_cuda import TIMING_NOTES

    arms = re.search(r"^  (bench[^)]*)\)$", DEVICE_SH.read_text(), re.M).group(1)
    steps = [s.strip() for s in arms.split("|")]
    assert steps == ["bench", "bench_chained", "bench_pipelined"]
    timings = [run_function("bench_timing", tmp_path, s).strip() for s in steps]
    assert timings == ["together", "chained", "pipelined"]
    assert set(timings) == set(TIMING_NOTES)


def test_side_by_side_runs_each_twice_and_skips_past_its_deadline(tmp_path):
    log = tmp_path / "ran"
    programs = []
    for name in ("time_a", "time_b"):
        program = tmp_path / name
        program.write_text(f"#!/bin/sh\necho {name} >> {log}\n")
        program.chmod(0o755)
        programs.append(str(program))
    env = dict(os.environ, OUT=str(tmp_path))
    env.pop("DEADLINE", None)
    run_function("side_by_side", tmp_path, "times.txt", *programs, env=env)
    assert log.read_text().split() == ["time_a", "time_b"] * 2
    text = (tmp_path / "times.txt").read_text()
    assert "== time_a round 2" in text and "skipped" not in text

    log.unlink()
    env["DEADLINE"] = "0"
    run_function("side_by_side", tmp_path, "times.txt", *programs, env=env)
    assert not log.exists()
    text = (tmp_path / "times.txt").read_text()
    assert text.count("skipped: the call's deadline") == 4


def test_first_gives_the_variants_a_deadline():
    text = DEVICE_SH.read_text()
    first = text[text.index("  first)") :]
    for step in ("decode", "tiled"):
        assert re.search(
            r"DEADLINE=\$\(\(t0 \+ \d+\)\) bash \"\$ROOT/scripts/cuda/device.sh\" "
            + step,
            first,
        ), step
