#!/usr/bin/env bash
# Put the sources that the CUDA backend's CMake clones from GitHub (CCCL,
# cuDNN frontend, CUTLASS, NVTX) and fmt into build/deps, at the versions
# mlx's CMakeLists pin, so that 'MLX_CUDA=1 make build' runs offline. Like
# mlx/ itself, they come through git, so a mirror works too:
#   git config --global url.<mirror>/NVIDIA/cutlass.insteadOf https://github.com/NVIDIA/cutlass.git
# Override a pinned version with <NAME>_REF=<tag> (NAME: CCCL, CUDNN,
# CUTLASS, NVTX3, FMT), e.g. when a mirror lacks the tag.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEPS="$BUILD/deps"
CMAKE_CUDA="$MLX/mlx/backend/cuda/CMakeLists.txt"
[ -f "$CMAKE_CUDA" ] || die "mlx/ is not checked out: run 'make apply' first"

# The GIT_TAG (or release version) after 'FetchContent_Declare(<name>' in a
# CMakeLists.txt.
pinned() {
  local name=$1 file=$2
  awk -v n="$name" '
    $0 ~ "FetchContent_Declare\\(" { want = 0 }
    $0 ~ "FetchContent_Declare\\(" n "$" || $1 == n { want = 1 }
    want && /GIT_TAG/ { print $2; exit }
    want && /releases\/download\// { sub(/.*releases\/download\//, ""); sub(/\/.*/, ""); print; exit }
  ' "$file"
}

# Archive <paths> of <repo> at <ref> into build/deps/<dest>.
fetch() {
  local dest=$1 url=$2 ref=$3
  shift 3
  local tmp="$DEPS/.clone-$dest"
  rm -rf "$tmp" "${DEPS:?}/$dest"
  note "$dest: $url at $ref"
  git clone -q --bare "$url" "$tmp"
  mkdir -p "$DEPS/$dest"
  git -C "$tmp" archive "$ref" "$@" | tar -x -C "$DEPS/$dest"
  rm -rf "$tmp"
}

mkdir -p "$DEPS"
ref=${CCCL_REF:-$(pinned cccl "$CMAKE_CUDA")}
fetch cccl https://github.com/NVIDIA/cccl.git "$ref" libcudacxx/include cub/cub thrust/thrust
# The layout of CCCL's release archive, which mlx expects: include/{cuda,nv,cub,thrust}.
(cd "$DEPS/cccl" && mkdir include && mv libcudacxx/include/* include/ &&
  mv cub/cub thrust/thrust include/ && rm -rf libcudacxx cub thrust)
fetch cudnn https://github.com/NVIDIA/cudnn-frontend.git \
  "${CUDNN_REF:-$(pinned cudnn "$CMAKE_CUDA")}" CMakeLists.txt cmake include \
  cudnn_frontend-config.cmake.in
fetch cutlass https://github.com/NVIDIA/cutlass.git \
  "${CUTLASS_REF:-$(pinned cutlass "$CMAKE_CUDA")}" include
fetch nvtx3 https://github.com/NVIDIA/NVTX.git \
  "${NVTX3_REF:-$(pinned nvtx3 "$CMAKE_CUDA")}" c
fetch fmt https://github.com/fmtlib/fmt.git \
  "${FMT_REF:-$(pinned fmt "$MLX/CMakeLists.txt")}"
note "CUDA build dependencies are in $DEPS"
