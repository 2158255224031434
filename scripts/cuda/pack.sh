#!/usr/bin/env bash
# Pack what scripts/cuda/device.sh needs on a machine without network into
# build/device/: the mlx/ tree as it is (series and uncommitted changes),
# build/deps (the harness's deps and cuda_deps steps fill it) and Debian's
# OpenBLAS for the CPU backend.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build"

out="$BUILD/device"
mkdir -p "$out"
tree=$(git -C "$ROOT/mlx" stash create)
git -C "$ROOT/mlx" archive "${tree:-HEAD}" | xz -T0 >"$out/mlx.tar.xz"
tar -C "$BUILD" --exclude=deps/sdist --exclude='deps/.clone-*' -cJf "$out/deps.tar.xz" deps
[ -f "$out/blas.tar.xz" ] || {
  pkgs=$(mktemp -d)
  (cd "$pkgs" && apt-get download -q libopenblas0-pthread libopenblas-pthread-dev \
    liblapacke-dev libgfortran5 libquadmath0 >/dev/null)
  for f in "$pkgs"/*.deb; do dpkg -x "$f" "$pkgs/root"; done
  r="$pkgs/root/usr"
  mkdir -p "$pkgs/blas/lib" "$pkgs/blas/include"
  cp "$r"/include/*.h "$r"/include/x86_64-linux-gnu/openblas-pthread/*.h "$pkgs/blas/include/"
  cp -L "$r"/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0 \
    "$r"/lib/x86_64-linux-gnu/libgfortran.so.5 "$r"/lib/x86_64-linux-gnu/libquadmath.so.0 \
    "$pkgs/blas/lib/"
  ln -s libopenblas.so.0 "$pkgs/blas/lib/libopenblas.so"
  tar -C "$pkgs/blas" -cJf "$out/blas.tar.xz" .
  rm -rf "$pkgs"
}
du -ch "$out"/*.tar.xz
