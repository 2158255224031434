"""Package the tested in-place build (mlx/python/mlx) as a wheel in dist/,
with mlx's own setup.py metadata, then install it into a scratch virtual
environment and import it there; and the patched mlx-lm/ as another wheel."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess

from . import core
from .core import BUILD, ROOT, die, step


def run(argv):
    argparse.ArgumentParser(prog="wheel", description=__doc__).parse_args(argv)
    mlx = core.MLX.dir
    pkg = mlx / "python" / "mlx"
    if not list(pkg.glob("core*.so")):
        die(f"no build in {pkg}: run 'make build' first")
    work, dist = BUILD / "wheel", ROOT / "dist"
    shutil.rmtree(work, ignore_errors=True)
    (work / "lib").mkdir(parents=True)
    dist.mkdir(exist_ok=True)
    (work / "setup.cfg").write_text(
        f"[build]\nbuild_base = {work}\nbuild_lib = {work / 'lib'}\n"
        f"[bdist_wheel]\nskip_build = 1\nbdist_dir = {work / 'bdist'}\ndist_dir = {dist}\n"
    )
    env = dict(os.environ, DIST_EXTRA_CONFIG=str(work / "setup.cfg"))
    py = str(core.PY)
    step(f"packaging {pkg.relative_to(ROOT)} as a wheel")
    # The pure-Python package and its stubs, then the binaries the build installed.
    quiet = dict(cwd=mlx, env=env, capture_output=True, text=True)
    p = subprocess.run([py, "setup.py", "-q", "build_py"], **quiet)
    if p.returncode != 0:
        die(f"build_py failed:\n{p.stdout}{p.stderr}")
    dest = work / "lib" / "mlx"
    for f in pkg.glob("core*.so"):
        shutil.copy2(f, dest, follow_symlinks=False)
    for d in ("lib", "include", "share"):
        if (pkg / d).is_dir():
            shutil.copytree(pkg / d, dest / d, symlinks=True, dirs_exist_ok=True)
    for old in dist.glob("mlx-*.whl"):
        old.unlink()
    p = subprocess.run([py, "setup.py", "-q", "bdist_wheel"], **quiet)
    if p.returncode != 0:
        die(f"bdist_wheel failed:\n{p.stdout}{p.stderr}")
    wheels = list(dist.glob("mlx-*.whl"))
    if not wheels:
        die("no wheel was written")
    wheel = wheels[0]

    step(f"installing {wheel.name} into a scratch environment")
    venv = work / "venv"
    subprocess.run([py, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)]
    subprocess.run(pip, check=True)
    probe = (
        "import mlx.core as mx; print('mlx', mx.__version__, mx.ones(4).sum().item())"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd="/",
        env=clean,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        die(f"the wheel does not import:\n{out.stderr}")
    step(f"wheel: {wheel} ({out.stdout.strip()})")
    mlx_lm_wheel(py, dist)


def mlx_lm_wheel(py, dist):
    """The patched mlx-lm/ as a wheel too (pure Python; it needs the mlx wheel
    and its PyPI dependencies where it is installed), checked to hold the
    series."""
    import zipfile

    tree = core.MLX_LM.dir
    for old in dist.glob("mlx_lm-*.whl"):
        old.unlink()
    step(f"packaging {tree.name}/ as a wheel")
    build = [py, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    p = subprocess.run(
        [*build, "-w", str(dist), str(tree)], capture_output=True, text=True
    )
    if p.returncode != 0:
        die(f"the mlx-lm wheel failed:\n{p.stdout}{p.stderr}")
    wheel = next(dist.glob("mlx_lm-*.whl"))
    cache = zipfile.ZipFile(wheel).read("mlx_lm/models/cache.py")
    if b"class TurboQuantKVCache" not in cache:
        die(f"{wheel.name} lacks the series' TurboQuantKVCache")
    step(f"wheel: {wheel}")


if __name__ == "__main__":
    core.main(run)
