#!/usr/bin/env bash
# Type-check MLX's Metal kernels without Apple's Metal compiler: clang
# -fsyntax-only on them as C++ for OpenCL (C++17 with address spaces), with
# scripts/metal_shim/ standing in for the Metal language and library. By
# default it checks every .metal file whose includes reach a file that the
# series changes (mlx/'s working tree against the base); name kernels (paths
# under mlx/backend/metal/kernels/) to check only those.
#   --tree DIR   check the kernels of another MLX source tree (default mlx/)
# The kernels are copied to a scratch directory, where three MSL constructs
# are rewritten on their own lines (see rewrite_msl); diagnostics name the
# files of the checked tree. README.md says what the check proves.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

CLANG=${CLANG:-clang++-16} # Debian package clang-16
SHIM="$ROOT/scripts/metal_shim"
KERNELS=mlx/backend/metal/kernels
# MSL has no double (its floating literals are float) and no program-scope
# variables outside the constant address space.
OPENCL_FEATURES=(-cl-single-precision-constant -Xclang
  -cl-ext=-cl_khr_fp64,-__opencl_c_fp64,-__opencl_c_program_scope_global_variables,-__opencl_c_device_enqueue)
# Kernels the shim does not model: the NAX ones need Metal 4's
# MetalPerformancePrimitives, whose matmul2d takes a class-type template
# argument (C++20; C++ for OpenCL is C++17), and bfloat vectors.
UNMODELLED='_nax\.metal$'

# The kernel headers that a file includes, directly or not, and the file.
include_closure() {
  local tree=$1 f inc
  local -a todo=("$2")
  local -A seen=()
  while [ ${#todo[@]} -gt 0 ]; do
    f=${todo[-1]}
    unset 'todo[-1]'
    [ -z "${seen[$f]:-}" ] && [ -f "$tree/$f" ] || continue
    seen[$f]=1
    echo "$f"
    while IFS= read -r inc; do
      todo+=("$inc")
    done < <(sed -n 's|^[[:space:]]*#[[:space:]]*include[[:space:]]*"\('"$KERNELS"'/[^"]*\)".*|\1|p' "$tree/$f")
  done
}

# The .metal files of the tree whose include closure has a file that the
# series changes in mlx/ (whichever tree is checked).
touched_kernels() {
  local tree=$1 changed k closure
  mlx_git rev-parse -q --verify "$BASE_REF" >/dev/null ||
    die "mlx/ has no $BASE_REF: run 'make apply' first"
  changed=$(mlx_git diff --name-only "$BASE_REF" -- "$KERNELS")
  [ -n "$changed" ] || return 0
  while IFS= read -r k; do
    closure=$(include_closure "$tree" "$k")
    ! grep -qxF "$changed" <<<"$closure" || echo "$k"
  done < <(cd "$tree" && find "$KERNELS" -name '*.metal' | sort)
}

# Rewrite in place, on the same lines, what MSL allows and C++ for OpenCL
# does not:
#  1. threadgroup variables, which OpenCL allows only in kernel functions
#     (and MLX's kernels are templates, which OpenCL kernels cannot be),
#     become references to threadgroup memory of the same type;
#  2. function constants, which MSL declares without a value, become extern;
#  3. member functions qualified with constant take OpenCL's __constant: the
#     const of the constant macro is not allowed on constructors.
rewrite_msl() {
  find "$1" \( -name '*.h' -o -name '*.metal' \) -exec perl -pi -e '
    s/^(\s*)threadgroup\s+([^*&()=;,]*?[\w>])\s+(\w+)\s*((?:\[.*\])?)\s*;/$1threadgroup $2 (&$3)$4 = metal::__shim::threadgroup_variable<$2$4>();/;
    s/^(\s*)(constant\s+\w+\s+\w+\s*\[\[function_constant\(\w+\)\]\]\s*;)/$1extern $2/;
    s/\)(\s*(?:const\s+)?)constant(\s*(?:[{:;]|$))/)$1__constant$2/;
  ' {} +
}

# clang's -fsyntax-only on one kernel of the rewritten copy. The warnings are
# those of MLX's Metal build (-Wall -Wextra, no C++17/20 extension ones), bar
# what MSL has and C++ lacks: its attributes ([[kernel]], [[buffer(0)]], ...)
# and pragmas, and `const constant`, which is `const const __constant` here.
check_kernel() {
  local copy=$1 tree=$2 kernel=$3
  "$CLANG" --target=spir64 -x clcpp -cl-std=clc++2021 "${OPENCL_FEATURES[@]}" \
    -fsyntax-only -nostdinc -cl-no-stdinc -isystem "$SHIM" \
    -include metal_shim.h -include mlx_instantiate.h -I "$copy" \
    -Wall -Wextra -Wno-c++17-extensions -Wno-c++20-extensions \
    -Wno-unknown-attributes -Wno-unknown-pragmas -Wno-duplicate-decl-specifier \
    "$copy/$kernel" 2>&1 | sed "s|$copy/|$tree/|g"
  return "${PIPESTATUS[0]}"
}

tree=$MLX
kernels=()
while [ $# -gt 0 ]; do
  case $1 in
    --tree)
      tree=$(cd "${2:?--tree needs a directory}" && pwd)
      shift 2
      ;;
    -*) die "unknown option $1 (usage: $0 [--tree DIR] [KERNEL.metal ...])" ;;
    *)
      kernels+=("$KERNELS/${1#"$KERNELS/"}")
      shift
      ;;
  esac
done
command -v "$CLANG" >/dev/null ||
  die "$CLANG not found: install Debian's clang-16 or set CLANG to a clang++"
[ -d "$tree/$KERNELS" ] || die "$tree has no $KERNELS"
if [ ${#kernels[@]} -eq 0 ]; then
  touched=$(touched_kernels "$tree")
  for k in $touched; do
    if [[ $k =~ $UNMODELLED ]]; then
      note "skipping $k: the shim does not model MetalPerformancePrimitives"
    else
      kernels+=("$k")
    fi
  done
fi
if [ ${#kernels[@]} -eq 0 ]; then
  note "no Metal kernel to check"
  exit 0
fi

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
mkdir -p "$copy/$KERNELS"
cp -R "$tree/$KERNELS/." "$copy/$KERNELS"
rewrite_msl "$copy/$KERNELS"

failed=()
for k in "${kernels[@]}"; do
  [ -f "$copy/$k" ] || die "no kernel $k in $tree"
  note "checking $k"
  check_kernel "$copy" "$tree" "$k" || failed+=("$k")
done
[ ${#failed[@]} -eq 0 ] || die "the Metal code does not type-check: ${failed[*]}"
note "checked ${#kernels[@]} Metal kernels"
