"""Functions of scripts/cuda/device.sh that edit or read files, run here
(the device itself is not needed for them)."""

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
    return "\n".join(lines[start : lines.index("}", start) + 1])


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
    series_lists = ROOT / CUDA_LISTS
    if not series_lists.exists():
        pytest.fail("mlx/ has no CUDA backend: apply the series first")
    lists = tmp_path / CUDA_LISTS
    lists.parent.mkdir(parents=True)
    before = series_lists.read_text()
    lists.write_text(before)

    run_function("sdpa_first", tmp_path)
    after = lists.read_text()
    moved = "quantized_sdpa.cu"
    # The same sources (and every other line), that one first.
    assert sources(after) == [moved] + [n for n in sources(before) if n != moved]
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
