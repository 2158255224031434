"""scripts/cuda/mlx_overhead.py, the diagnostic of an MLX decode call's time
beyond its kernels, runs on the CPU too: every way, with CUDA graphs on and
off, gives a time for every length."""

import subprocess
import sys

from conftest import ROOT


def test_every_way_is_timed_with_graphs_on_and_off(tmp_path):
    out = tmp_path / "overhead.md"
    script = ROOT / "scripts" / "cuda" / "mlx_overhead.py"
    command = [sys.executable, str(script), "--device", "cpu", "--lengths", "64", "128"]
    subprocess.run(command + ["--out", str(out)], check=True, capture_output=True)
    text = out.read_text()
    assert "exit status" not in text
    rows = [
        line.split("|")[1:-1]
        for line in text.splitlines()
        if line.startswith("| 64 ") or line.startswith("| 128 ")
    ]
    assert sorted((r[0].strip(), r[1].strip()) for r in rows) == [
        ("128", "off"),
        ("128", "on"),
        ("64", "off"),
        ("64", "on"),
    ]
    for r in rows:
        times = [float(x) for x in r[2:]]
        assert len(times) == 6 and all(t > 0 for t in times)
