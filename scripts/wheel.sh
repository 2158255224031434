#!/usr/bin/env bash
# Package the tested in-place build (mlx/python/mlx) as a wheel in dist/, with
# mlx's own setup.py metadata, then install it into a scratch virtual
# environment and import it there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

pkg="$MLX/python/mlx"
compgen -G "$pkg/core*.so" >/dev/null || die "no build in $pkg: run 'make build' first"
work="$BUILD/wheel"
rm -rf "$work"
mkdir -p "$work/lib" "$ROOT/dist"
cat >"$work/setup.cfg" <<CFG
[build]
build_base = $work
build_lib = $work/lib
[bdist_wheel]
skip_build = 1
bdist_dir = $work/bdist
dist_dir = $ROOT/dist
CFG
export DIST_EXTRA_CONFIG="$work/setup.cfg"
cd "$MLX"
# The pure-Python package and its stubs, then the binaries the build installed.
"$PY" setup.py -q build_py >/dev/null
cp -a "$pkg"/core*.so "$pkg/lib" "$pkg/include" "$pkg/share" "$work/lib/mlx/"
rm -f "$ROOT"/dist/mlx-*.whl
"$PY" setup.py -q bdist_wheel >"$work/bdist.log" 2>&1 || { cat "$work/bdist.log"; die "bdist_wheel failed"; }
wheel=$(compgen -G "$ROOT/dist/mlx-*.whl") || die "no wheel was written"

note "installing $(basename "$wheel") into a scratch environment"
rm -rf "$work/venv"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-deps "$wheel"
(cd / && "$work/venv/bin/python" -c 'import mlx.core as mx; print("mlx", mx.__version__, mx.ones(4).sum().item())')
echo "wheel: $wheel"
