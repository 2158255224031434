"""Run this project's tests (python_tests/) and upstream's whole Python suite
from the patched submodule against this checkout's build: on the CPU, and on
a Mac with Metal on the GPU as well (DEVICE=gpu, as upstream's suite reads
it). The harness's own tests run once; the others run on every device.

Environment:
  DEVICES="cpu gpu"  the devices to run on (default: cpu, and gpu where
                     Metal is available)
  PYTEST_ARGS=...    extra arguments for every pytest run (e.g. -x, -k name)"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess

from . import core
from .core import BUILD, ROOT, die, step

# Upstream tests that cannot pass on this build, each with its reason.
DESELECT = {
    # The build has MLX_BUILD_GGUF=OFF (gguf-tools comes from GitHub).
    "test_load.py::TestLoad::test_save_and_load_gguf": "no GGUF",
    "test_load.py::TestLoad::test_save_and_load_gguf_metadata_basic": "no GGUF",
    "test_load.py::TestLoad::test_save_and_load_gguf_metadata_arrays": "no GGUF",
    "test_load.py::TestLoad::test_save_and_load_gguf_metadata_mixed": "no GGUF",
    "test_load.py::TestLoad::test_non_contiguous": "no GGUF: it saves a .gguf too",
}
# mlx-lm's tests of the mlx-lm series (its others download models).
MLX_LM_TESTS = (
    "tests/test_turboquant_cache.py",
    "tests/test_turboquant_generate.py",
    "tests/test_kv_budget.py",
)
# This project's tests that do not depend on the device: run once.
DEVICE_FREE = (
    "test_harness.py",
    "test_build.py",
    "test_check_metal.py",
    "test_metal_run.py",
)


def devices(env, py):
    if env.get("DEVICES"):
        return env["DEVICES"].split()
    probe = "import mlx.core as mx; print(mx.metal.is_available())"
    p = subprocess.run([py, "-c", probe], env=env, capture_output=True, text=True)
    return ["cpu", "gpu"] if p.stdout.strip() == "True" else ["cpu"]


def pytest(py, args, cwd, env):
    return subprocess.run(
        [py, "-m", "pytest", "-q", *args], cwd=cwd, env=env
    ).returncode


def run(argv):
    argparse.ArgumentParser(
        prog="test",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    py = str(core.PY)
    if not core.PY.exists():
        die(f"no {core.VENV}: run 'make' first")
    mlx = core.MLX.dir
    env = dict(os.environ)
    # This checkout's build, whatever .venv's .pth points at.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(mlx / "python"), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    extra = shlex.split(env.get("PYTEST_ARGS", ""))
    cache = ["-o", f"cache_dir={BUILD / 'pytest-cache'}"]
    deselect = [f"--deselect={t}" for t in DESELECT]
    failed = []
    for i, device in enumerate(devices(env, py)):
        env["DEVICE"] = device
        skip = (
            []
            if i == 0
            else [f"--ignore={ROOT / 'python_tests' / t}" for t in DEVICE_FREE]
        )
        what = "the harness, the build and the series" if i == 0 else "the series"
        step(f"python_tests/ ({what}) on DEVICE={device}")
        if pytest(py, [*cache, *skip, *extra, str(ROOT / "python_tests")], ROOT, env):
            failed.append(f"python_tests/ on {device}")
        step(f"upstream python/tests on the patched build (DEVICE={device})")
        tests = mlx / "python" / "tests"
        if pytest(py, ["--rootdir", ".", *cache, *deselect, *extra, "."], tests, env):
            failed.append(f"upstream python/tests on {device}")
        step(f"mlx-lm's tests of its series (DEVICE={device})")
        lm = core.MLX_LM.dir
        if pytest(py, ["--rootdir", ".", *cache, *extra, *MLX_LM_TESTS], lm, env):
            failed.append(f"mlx-lm tests on {device}")
    if failed:
        die("failed: " + ", ".join(failed))
    step(
        f"tests passed ({len(DESELECT)} upstream tests deselected, see scripts/harness/test.py)"
    )


if __name__ == "__main__":
    core.main(run)
