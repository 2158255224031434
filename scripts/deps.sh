#!/usr/bin/env bash
# Install what the offline build and the tests need: Debian packages, a
# virtual environment with the PyPI packages, and the nanobind and json
# source trees CMake would otherwise download.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

DEBIAN_PACKAGES=(build-essential cmake ninja-build ccache libopenblas-dev
  liblapacke-dev libfmt-dev nlohmann-json3-dev python3-venv
  clang-16) # clang-16: make check-metal
NANOBIND_VERSION=2.12.0 # as mlx's CMakeLists.txt pins it
DEPS="$BUILD/deps"

install_debian_packages() {
  command -v dpkg-query >/dev/null || {
    note "not a Debian system: install the equivalents of ${DEBIAN_PACKAGES[*]} yourself"
    return
  }
  local missing=() p
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  note "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
}

make_venv() {
  if [ ! -x "$PY" ]; then
    note "creating $VENV"
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.requirements" reqs=("$ROOT"/scripts/requirements*.txt)
  if ! cat "${reqs[@]}" | cmp -s - "$stamp"; then
    note "installing PyPI packages into $VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -r "$ROOT/scripts/requirements.txt"
    "$PY" -m pip install -q -r "$ROOT/scripts/requirements-model.txt"
    # mlx-lm must not bring an mlx: .venv imports the patched build.
    "$PY" -m pip install -q --no-deps -r "$ROOT/scripts/requirements-model-nodeps.txt"
    cat "${reqs[@]}" >"$stamp"
  fi
}

# CMake's FetchContent takes these instead of cloning from GitHub.
source_trees() {
  mkdir -p "$DEPS"
  if [ ! -f "$DEPS/nanobind/CMakeLists.txt" ]; then
    note "fetching the nanobind $NANOBIND_VERSION sdist from PyPI"
    rm -rf "$DEPS/nanobind" "$DEPS/sdist"
    "$PY" -m pip download -q --no-deps --no-binary :all: \
      "nanobind==$NANOBIND_VERSION" -d "$DEPS/sdist"
    tar -xzf "$DEPS/sdist/nanobind-$NANOBIND_VERSION.tar.gz" -C "$DEPS"
    mv "$DEPS/nanobind-$NANOBIND_VERSION" "$DEPS/nanobind"
  fi
  # mlx includes json from <dir>/single_include/nlohmann; Debian's header fits.
  local json=/usr/include/nlohmann/json.hpp
  [ -f "$json" ] || die "missing $json (Debian package nlohmann-json3-dev)"
  mkdir -p "$DEPS/json/single_include"
  ln -sfn "$(dirname "$json")" "$DEPS/json/single_include/nlohmann"
}

install_debian_packages
make_venv
source_trees
