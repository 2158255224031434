#!/usr/bin/env bash
# Build the patched mlx Python package in place (mlx/python/mlx) with CMake,
# Ninja and ccache, offline, in the ignored build/ directory, and make .venv
# import it. The CMake options are those of mlx's setup.py, plus the offline
# ones.
#   MLX_CUDA=1     also build the CUDA backend (in build/cuda, not build/cpu),
#                  offline when scripts/cuda_deps.sh has put its dependencies
#                  in build/deps
#   JOBS=N         parallel compile jobs (default: all cores)
#   PYTHON=        the Python to build for (default: .venv's)
#   MLX_TREE=, BUILD_DIR=   build another checkout of mlx, in another build
#                  directory, without pointing .venv at it (check_bisect.sh)
#   CMAKE_EXTRA=   more CMake options, e.g. FETCHCONTENT_SOURCE_DIR_<NAME>=<dir>
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PY=${PYTHON:-$PY}
DEPS="$BUILD/deps"
MAIN_TREE=$MLX
MLX=${MLX_TREE:-$MLX}
[ -x "$(command -v "$PY")" ] || die "no $PY: run 'make deps' first"
[ -f "$MLX/setup.py" ] || die "mlx/ is not checked out: run 'make apply' first"

backend=cpu
args=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DMLX_BUILD_PYTHON_BINDINGS=ON
  -DMLX_BUILD_TESTS=OFF
  -DMLX_BUILD_EXAMPLES=OFF
  -DMLX_BUILD_BENCHMARKS=OFF
  -DMLX_BUILD_GGUF=OFF
  -DFETCHCONTENT_FULLY_DISCONNECTED=ON
  -DFETCHCONTENT_SOURCE_DIR_JSON="$DEPS/json"
  -DFETCHCONTENT_SOURCE_DIR_NANOBIND="$DEPS/nanobind"
  -DPython_EXECUTABLE="$PY"
  -DCMAKE_INSTALL_PREFIX="$MLX/python/mlx"
  -DMLX_PYTHON_BINDINGS_OUTPUT_DIRECTORY="$MLX/python/mlx"
  -DCMAKE_INSTALL_MESSAGE=NEVER
)
# fmt comes from the system (Debian's libfmt-dev) unless build/deps has it.
if [ -d "$DEPS/fmt" ]; then
  args+=(-DUSE_SYSTEM_FMT=OFF -DFETCHCONTENT_SOURCE_DIR_FMT="$DEPS/fmt")
else
  args+=(-DUSE_SYSTEM_FMT=ON)
fi
if [ "${MLX_CUDA:-0}" = 1 ]; then
  backend=cuda
  args+=(-DMLX_BUILD_CUDA=ON
    "-DMLX_CUDA_ARCHITECTURES=${MLX_CUDA_ARCHITECTURES:-90a-real}")
  # The sources the CUDA backend's CMake would clone (scripts/cuda_deps.sh).
  for name in cccl cudnn cutlass nvtx3; do
    [ ! -d "$DEPS/$name" ] ||
      args+=("-DFETCHCONTENT_SOURCE_DIR_${name^^}=$DEPS/$name")
  done
fi
# shellcheck disable=SC2206
args+=(${CMAKE_EXTRA:-})

# The version string of mlx's own setup.py, which carries the commit hash.
version=$(cd "$MLX" && "$PY" -c 'import setup; print(setup.get_version())')
args+=(-DMLX_VERSION="$version")

# Paths relative to the project root let clones share one ccache.
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=true

note "building mlx $version ($backend) in ${BUILD_DIR:-build/$backend}"
dir=${BUILD_DIR:-$BUILD/$backend}
cmake -S "$MLX" -B "$dir" -G Ninja "${args[@]}" >"$dir.cmake.log" ||
  { cat "$dir.cmake.log"; die "cmake configure failed"; }
cmake --build "$dir" --target install -j "${JOBS:-$(nproc)}"
cmake --install "$dir" --component core_stub >/dev/null

# .venv imports the in-place package: a rebuild needs no reinstall.
if [ -z "${PYTHON:-}" ] && [ "$MLX" = "$MAIN_TREE" ]; then
  site=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$MLX/python" >"$site/mlx-turboquant.pth"
fi
PYTHONPATH="$MLX/python" "$PY" -c 'import mlx.core as mx; print("built mlx", mx.__version__, "at", mx.__file__)'
