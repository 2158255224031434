#!/usr/bin/env bash
# Steps of a CUDA run on a lent GPU machine with no network, which gets the
# project's tree plus build/device/ (see scripts/cuda/pack.sh):
#   device.sh setup     unpack mlx/, build/deps and a BLAS; probe the machine
#   device.sh check     compile and run scripts/cuda/check_quantized_sdpa.cu and
#                       the CUDA executor's instruction checks
#   device.sh build     MLX_CUDA=1 python3 scripts/harness build (CUDA libraries from the
#                       machine's Python packages where the toolkit lacks them)
#   device.sh test      the CUDA tests, upstream's quantized SDPA tests and, when
#                       the run carries mlx-lm/, the mlx-lm series' cache tests
#                       (test_cudnn: the prefill tests with cuDNN on only;
#                       test_rest: the others)
#   device.sh bench     scripts/bench_speed_cuda.py (bench_chained: each
#                       call's query the output of the one before;
#                       bench_pipelined: each MLX call to mx.async_eval as
#                       it is made)
#   device.sh overhead  scripts/cuda/mlx_overhead.py (an MLX decode call's time
#                       beyond its kernels)
#   device.sh prefill   scripts/bench_prefill.py --device gpu
#   device.sh few       scripts/cuda/few_queries.py with cuDNN's chunks and
#                       with the tiled kernel
#   device.sh kernels   scripts/cuda/prefill_kernels.py: each kernel of a
#                       512 x 32K prefill chunk under ncu (float16 SDPA,
#                       turbo4's call, dequant+sdpa)
#   device.sh prompt    scripts/cuda/prompt_gpu.py: a 32K prompt through
#                       mlx-lm's llama (random weights), float16 against
#                       turbo4 caches (needs the mlx-lm/ the run carries)
#   device.sh decode    the decode kernels' times and where a short turbo4
#                       call's time goes (QSDPA_DECODE) for each time-only
#                       checker carried in build/device/variants/ (time_*:
#                       one built with -DQSDPA_TIME_ONLY from each tree), in
#                       turn, twice, and their turbo4 kernels' SASS; needs no
#                       MLX build
#   device.sh tiled     the tiled kernel's times for each time-only checker
#                       carried in build/device/prefill/ (time_*), twice
#   device.sh first     one call for a fresh machine: setup; then, beside a
#                       quick build, a profile of turbo4's decode, the decode
#                       and tiled steps and the kernels' check (checker
#                       compiled here and carried as
#                       build/device/check_quantized_sdpa, as are
#                       build/device/check_* of other trees); then the
#                       benchmarks (bench, overhead) and the tests, as time
#                       allows. A later call on the same (warm) machine can
#                       run test, bench, overhead or prefill alone: each
#                       refreshes mlx/ first when the call finds it empty
#   device.sh bundle    pack the files in $OUT into $OUT/outputs.tar.gz, as
#                       the call's last command (a call brings back at most 8
#                       files: on 2026-12-07 the benchmark's table and
#                       upstream's quantized tests of a 'first' were left out)
# Outputs go to $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/build/device/out}
mkdir -p "$OUT"
PY=python3
BLAS=/opt/blas

# The CUDA libraries the build links (cuBLAS, cuFFT, NVRTC, cuDNN), from the
# machine's nvidia-* Python packages, linked into one prefix.
cuda_libs() {
  local nv prefix=/opt/cuda-libs
  nv=$($PY -c 'import nvidia; print(list(nvidia.__path__)[0])')
  mkdir -p $prefix/include $prefix/lib
  for d in "$nv"/*/; do
    [ -d "$d/include" ] && cp -rs "$d/include/." $prefix/include/ 2>/dev/null || true
    [ -d "$d/lib" ] && for f in "$d"/lib/*.so*; do ln -sf "$f" $prefix/lib/; done
  done
  # Unversioned names for the linker.
  for f in $prefix/lib/*.so.*; do
    base=${f%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$f")" "$base"
  done
  echo $prefix
}

# To fit a short lease: quantized_matmul's naive CUTLASS kernels, which the
# series does not touch and which take most of the build, become stubs that
# throw, and the Hopper-only qmm kernels are skipped. A quick build leaves
# build/.quick-qmm, so that 'refresh' stubs them again: otherwise ninja
# rebuilds them from the unpacked sources, which takes most of a lease.
quick_qmm() {
  [ "${QUICK_QMM:-0}" = 1 ] || [ -f build/.quick-qmm ] || return 0
  touch build/.quick-qmm
  export MLX_DISABLE_SM90A_KERNELS=1
  for f in mlx/mlx/backend/cuda/quantized/qmm/qmm_impl_naive_m*.cu; do
    # A second build on the same tree finds the stubs already there.
    grep -q "is a stub in this build" "$f" && continue
    m=$(sed -n 's/^QMM_NAIVE_GPU(\(.*\))/\1/p' "$f")
    # The stub keeps the time of the file it replaces (the archive's), so
    # that a refresh, which unpacks and stubs it again, leaves its object be
    # (2026-12-07: ninja compiled the six stubs again in a refresh).
    stamp=$(stat -c %Y "$f")
    cat >"$f" <<STUB
#include <optional>
#include <stdexcept>
#include "mlx/backend/cuda/device.h"
#include "mlx/primitives.h"
namespace mlx::core {
template <int TileM, bool KMajor>
void qmm_impl_naive(const array&, const array&, const array&,
    const std::optional<array>&, array&, int, int, QuantizationMode,
    cu::CommandEncoder&) {
  throw std::runtime_error("qmm_impl_naive is a stub in this build");
}
template void qmm_impl_naive<$m>(const array&, const array&, const array&,
    const std::optional<array>&, array&, int, int, QuantizationMode,
    cu::CommandEncoder&);
}
STUB
    touch -d "@$stamp" "$f"
  done
}

# The quantized SDPA's kernels take the longest of the build's files: in
# one file, quantized_sdpa.cu, they took 296 s (137 s in cicc, 131 s in
# ptxas) for sm_90a on the 2-core machine (2026-12-07), and a quick build on an
# H100 had all but it and the links done after 540 s, twice. The series now
# builds them in a file per head dimension (quantized_sdpa_d64.cu, ...),
# and the device's build lists those files first among the CUDA sources,
# which ninja starts in about the order the build lists them (an edit of
# the build, like the stubs above, not of the series).
sdpa_first() {
  local f=mlx/mlx/backend/cuda/CMakeLists.txt
  grep -q '^  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/quantized_sdpa' "$f" && return 0
  awk '
    /^ *\$\{CMAKE_CURRENT_SOURCE_DIR\}\/quantized_sdpa[_a-z0-9]*\.cu$/ {
      sub(/^ */, ""); moved[n++] = $0; next
    }
    { rest[m++] = $0 }
    END {
      for (i = 0; i < m; i++) {
        if (n && rest[i] ~ /^  PRIVATE \$\{CMAKE_CURRENT_SOURCE_DIR\}\/allocator\.cpp$/) {
          print "  PRIVATE " moved[0]
          for (j = 1; j < n; j++) print "          " moved[j]
          sub(/^  PRIVATE /, "          ", rest[i])
        }
        print rest[i]
      }
    }' "$f" >"$f.first"
  mv "$f.first" "$f"
}

# The system's libstdc++, preloaded by the steps that run MLX: libmlx.so
# exports part of a static copy (see build), and without the preload any
# C++ exception from MLX (a ValueError) killed the process after numpy,
# torch or pytest had loaded the system's (SIGSEGV; upstream's quantized
# tests, bench_prefill.py and MLX's SDPA with cuDNN on died so).
preload_libstdcxx() {
  local lib
  lib=$(/usr/bin/g++ -print-file-name=libstdc++.so.6 2>/dev/null || true)
  [ -f "$lib" ] || lib=/lib/x86_64-linux-gnu/libstdc++.so.6
  export LD_PRELOAD=$(readlink -f "$lib")
}

# The tensor-core pass 1 of turbo4 keys and values (D=128, float16): the
# start of its mangled name, which its parameters follow (on 2026-12-07 a
# full name went stale when they changed, and no SASS came back).
TURBO4_PASS1=_ZN3mlx4core2cu24quantized_sdpa_mma_pass1I6__halfLi128ENS1_9TurboRowsIS3_Li4EEES5_EE

# The SASS of a program's functions whose mangled names start with $2.
sass_of() {
  cuobjdump -sass "$1" | awk -v name="$2" '/Function : /{on = index($3, name) == 1} on'
}

# Runs the given programs (builds of a kernel's variants) in turn, twice, so
# that they are timed side by side; the output goes to $OUT/$1. With
# DEADLINE (seconds since the epoch) set, a run that could end after it (60
# s a run) is skipped and named: `first` runs them beside its build, which
# is done by about 400 s, and the benchmarks need the call's time after it
# (2026-12-08: eight variants, sixteen runs).
side_by_side() {
  local out=$1 round c
  shift
  for round in 1 2; do
    for c in "$@"; do
      echo "== $(basename "$c") round $round"
      if [ -n "${DEADLINE:-}" ] && [ $(($(date +%s) + 60)) -gt "$DEADLINE" ]; then
        echo "skipped: the call's deadline"
        continue
      fi
      timeout 60 "$c" || true
    done
  done 2>&1 | tee "$OUT/$out"
}

# The checker whose turbo4 decode `first` profiles: the series' when it is
# carried, else the first other checker carried, else none (no output). A
# call that carried no checker once ended the steps beside the build here,
# before the decode times (2026-12-07: `ls` of no match failed under
# pipefail).
profiled_checker() {
  local c
  for c in build/device/check_quantized_sdpa build/device/check_*; do
    if [ -f "$c" ] && [ -x "$c" ]; then
      echo "$c"
      return 0
    fi
  done
}

# A new call finds mlx/ empty (a submodule's files do not travel), while a
# machine still warm from an earlier call keeps build/cuda: a refresh unpacks
# mlx/ and lets ninja relink it (10 s on 2026-12-06; without it, a bench on
# such a machine ran no MLX row). For the steps that import MLX.
ensure_mlx() {
  ls mlx/python/mlx/core*.so >/dev/null 2>&1 ||
    bash "$ROOT/scripts/cuda/device.sh" refresh >"$OUT/refresh_auto.txt" 2>&1 || true
}

# What a step that imports the built MLX needs: the build (refreshed if
# this call found mlx/ empty), the system's libstdc++ preloaded (see
# preload_libstdcxx), the CUDA libraries and the BLAS on the library path,
# and the package on the Python path.
mlx_env() {
  ensure_mlx
  preload_libstdcxx
  export LD_LIBRARY_PATH=/opt/cuda-libs/lib:$BLAS/lib:${LD_LIBRARY_PATH:-}
  export PYTHONPATH=$ROOT/mlx/python
}

# The CCCL headers that MLX's JIT includes, copied from build/deps to
# where it looks for them beside the package (mlx/python/mlx/include/cccl).
jit_headers() {
  local dir=mlx/python/mlx/include/cccl
  [ -d $dir/cuda ] && return 0
  mkdir -p $dir
  cp -r build/deps/cccl/include/cuda build/deps/cccl/include/nv $dir/
}

# The benchmark's --timing for a bench step (bench, bench_chained,
# bench_pipelined).
bench_timing() {
  case $1 in
    bench) echo together ;;
    bench_*) echo "${1#bench_}" ;;
  esac
}

case ${1:?step} in
  setup)
    mkdir -p build mlx $BLAS
    tar -xJf build/device/deps.tar.xz -C build
    tar -xJf build/device/mlx.tar.xz -C mlx
    tar -xJf build/device/blas.tar.xz -C $BLAS
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    # What tells two machines of one kind apart (2026-12-07: two H100s gave
    # turbo4 at 128K 63.8 and 78.5 us from the same kernels, PyTorch's
    # float16 decode the same): the SM clock and its limits, and the host.
    nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,clocks.mem,power.limit,pstate,clocks_throttle_reasons.active \
      --format=csv || true
    lscpu | grep -E '^Model name|^CPU max MHz' || true
    nvcc --version | tail -1
    $PY --version
    cmake --version | head -1
    ninja --version
    nproc
    ls /usr/local/cuda/lib64 | grep -E 'cublas|cufft|nvrtc|cudnn' | head || true
    echo "cuda libs: $(cuda_libs)"
    ls /opt/cuda-libs/lib | grep -E 'cublasLt|cudnn\.|nvrtc\.|cufft\.' | head
    ;;
  check)
    nvcc -std=c++20 -O3 -arch=sm_90a -I mlx scripts/cuda/check_quantized_sdpa.cu \
      -o build/check_quantized_sdpa
    build/check_quantized_sdpa | tee "$OUT/check_quantized_sdpa.txt"
    # The CUDA executor's instruction checks (python_tests/test_cuda_run.py)
    # on the hardware the ISA describes: they must pass here too.
    nvcc -std=c++20 -O2 -arch=sm_90a python_tests/cuda_run_instructions.cu \
      -o build/cuda_run_instructions
    build/cuda_run_instructions | tee "$OUT/cuda_run_instructions.txt"
    ;;
  build)
    quick_qmm
    sdpa_first
    # The machine's CC and CXX (/opt/gcc) are a wrapper of gcc 13 whose
    # library path has libstdc++.a but no libstdc++.so: libmlx.so linked with
    # it carries its own copy of libstdc++, and a C++ exception thrown there
    # (any ValueError from MLX) crashes the process once numpy, torch or
    # pytest has loaded the system's. The system's gcc links it dynamically.
    # (Neither has an lto-wrapper.)
    export CC=/usr/bin/gcc CXX=/usr/bin/g++
    sed -i 's/^  LTO$//' mlx/python/src/CMakeLists.txt
    libs=$(cuda_libs)
    export LD_LIBRARY_PATH=$libs/lib:$BLAS/lib:${LD_LIBRARY_PATH:-}
    MLX_CUDA=1 PYTHON=$PY PYPI_RELEASE=1 CMAKE_EXTRA="-DBLA_VENDOR=OpenBLAS \
      -DCMAKE_PREFIX_PATH=$BLAS;$libs -DBLAS_INCLUDE_DIRS=$BLAS/include \
      -DLAPACK_INCLUDE_DIRS=$BLAS/include -DCUDNN_INCLUDE_PATH=$libs/include \
      -DCUDNN_LIBRARY_PATH=$libs/lib -DCUDAToolkit_ROOT=/usr/local/cuda \
      -DCMAKE_CUDA_HOST_COMPILER=$CXX" \
      python3 scripts/harness build 2>&1 | tee "$OUT/build.log" | grep -E 'error|FAILED|built|^\[[0-9]+/' | tail -40
    # The CCCL headers that MLX's JIT (NVRTC) includes: without them every
    # JIT-compiled kernel (gather, scatter, ...) failed in the tests that
    # followed a build. Neither the harness's build nor the install target
    # put them beside the package on a fresh machine (2026-12-06, twice).
    jit_headers
    { ls -d mlx/python/mlx/include/cccl 2>&1 || true; } | sed 's/^/JIT headers: /' |
      tee -a "$OUT/build.log"
    # Built so, libmlx.so still exports part of libstdc++'s exception
    # support and locales (__cxa_begin_catch, ...; not __cxa_throw), and
    # an MLX exception still crashed the process once numpy had loaded the
    # system's libstdc++: the steps below preload it (preload_libstdcxx).
    nm -D --defined-only mlx/python/mlx/lib/libmlx.so | grep -c ' __cxa_' |
      sed 's/^/libstdc++ symbols (__cxa_*) defined by libmlx.so: /' | tee -a "$OUT/build.log"
    ;;
  refresh)
    # A new call empties mlx/: unpack it again, with the same edits, and let
    # ninja restore what the build put there.
    tar -xJf build/device/mlx.tar.xz -C mlx
    quick_qmm
    sdpa_first
    # This machine's gcc has no lto-wrapper.
    sed -i 's/^  LTO$//' mlx/python/src/CMakeLists.txt
    # Its log in $OUT: on 2026-12-06 two refreshes after a quick build cut
    # short (215 of 249 steps) ran out of time without a word.
    LD_LIBRARY_PATH=/opt/cuda-libs/lib:$BLAS/lib cmake --build build/cuda --target install -j16 \
      >"$OUT/refresh.log" 2>&1 || true
    grep -E 'rror|FAILED' "$OUT/refresh.log" | head -20 || true
    grep -E '^\[[0-9]+/' "$OUT/refresh.log" | sed -n '1p;$p' || true
    jit_headers
    ;;
  test_cudnn)
    mlx_env
    # The tests compare float32 results with references at 1e-4 or so;
    # matmuls in TF32 (MLX's default on CUDA) are good to about 1e-3.
    export MLX_ENABLE_TF32=0
    # With cuDNN on (MLX's default), calls of 4096 query rows or more
    # without a mask array take cuDNN over chunks of decoded keys and values
    # instead of the tiled kernel: the prefill tests and the log-sum-exp
    # test (about 70 s on an H100; 'first' can fit them after its build).
    # Those of the chunks' plan first (a growing cache, caches shorter and
    # longer than a chunk): on 2026-12-06 'first' ran out of time at the
    # 122nd test of 139, before them.
    export MLX_CUDA_USE_CUDNN_SDPA=1
    chunks="growing_cache or key_chunks or cudnn_chunks_ran"
    for k in "$chunks" "not ($chunks)"; do
      $PY -m pytest -q -p no:cacheprovider --tb=short -k "$k" \
        python_tests/test_cuda_prefill.py python_tests/test_cuda.py::test_log_sum_exp_from_the_kernels \
        2>&1 || true
    done >"$OUT/test_cuda_cudnn_log.txt"
    # Both runs' summaries, then the log's tail.
    { grep -E ' in [0-9.]+s' "$OUT/test_cuda_cudnn_log.txt" || true
      tail -25 "$OUT/test_cuda_cudnn_log.txt"; } | tee "$OUT/test_cuda_cudnn.txt"
    ;;
  test | test_rest)
    # The cuDNN tests first (test_rest leaves them out), since a call cut
    # short by its time runs out here.
    if [ "$1" = test ]; then
      bash "$ROOT/scripts/cuda/device.sh" test_cudnn
    fi
    mlx_env
    export MLX_ENABLE_TF32=0
    # Then all of them with cuDNN off (the tiled kernel). The whole log,
    # whose assertion lines tell what the first run after a build failed
    # (results/cuda_gpu_tests_h100.txt, 1), and its tail.
    export MLX_CUDA_USE_CUDNN_SDPA=0
    $PY -m pytest -q -p no:cacheprovider --tb=short python_tests/test_cuda.py \
      python_tests/test_cuda_prefill.py >"$OUT/test_cuda_log.txt" 2>&1 || true
    tail -40 "$OUT/test_cuda_log.txt" | tee "$OUT/test_cuda.txt"
    # Upstream's RMSNorm, which the series fixes for rows of two warps (the
    # cache's NaN below came from it).
    (cd mlx/python/tests && DEVICE=gpu $PY -m pytest -q -p no:cacheprovider \
      test_fast.py -k rms_norm 2>&1 | tail -15 || true) | tee "$OUT/test_fast_rms_norm_gpu.txt"
    (cd mlx/python/tests && DEVICE=gpu $PY -m pytest -q -p no:cacheprovider \
      test_quantized.py -k "sdpa or turbo" 2>&1 | tail -25 || true) | tee "$OUT/test_quantized_gpu.txt"
    # The mlx-lm series' cache tests (protected and recent tokens through
    # return_lse) on the GPU, when the run carries the mlx-lm submodule
    if [ -d mlx-lm/mlx_lm ]; then
      ($PY scripts/cuda/mlx_lm_tests.py -q -p no:cacheprovider 2>&1 | tail -15 || true) |
        tee "$OUT/test_mlx_lm_gpu.txt"
      # The cache's NaN on CUDA (results/cuda_gpu_tests_h100.txt), with and
      # without CUDA graphs.
      for graphs in 1 0; do
        (MLX_USE_CUDA_GRAPHS=$graphs timeout 60 $PY scripts/cuda/cache_nan.py plain 2>&1 || true) |
          sed "s/^/graphs=$graphs /" | tee -a "$OUT/cache_nan.txt"
      done
    fi
    ;;
  bench | bench_chained | bench_pipelined)
    mlx_env
    # cuDNN's SDPA crashed on float16 decode on one machine: the script times
    # MLX's float16 SDPA with cuDNN on and off in processes of their own; the
    # quantized rows (whose fallback attends through MLX's SDPA) run with it
    # off. bench_chained and bench_pipelined: the calls issued as
    # --timing chained or pipelined says (speed_cuda_chained.md,
    # speed_cuda_pipelined.md).
    export MLX_CUDA_USE_CUDNN_SDPA=0
    $PY scripts/bench_speed_cuda.py --timing "$(bench_timing $1)" \
      --out "$OUT/${1/bench/speed_cuda}.md"
    ;;
  overhead)
    mlx_env
    export MLX_CUDA_USE_CUDNN_SDPA=0
    $PY scripts/cuda/mlx_overhead.py --out "$OUT/mlx_overhead.md"
    ;;
  prefill)
    mlx_env
    # cuDNN on (MLX's default): the issue's baseline. Each group of rows runs
    # in a process of its own, so a cuDNN crash costs only that group.
    unset MLX_CUDA_USE_CUDNN_SDPA
    $PY scripts/bench_prefill.py --device gpu --out "$OUT/prefill_cuda.md"
    ;;
  few)
    # Quantized SDPA for 16-512 queries through MLX, cuDNN over decoded
    # chunks against the tiled kernel (MLX_CUDA_QUANTIZED_SDPA_CUDNN=0),
    # alternating, twice.
    mlx_env
    unset MLX_CUDA_USE_CUDNN_SDPA
    for cudnn in 1 0 1 0; do
      MLX_CUDA_QUANTIZED_SDPA_CUDNN=$cudnn timeout 90 $PY scripts/cuda/few_queries.py || true
    done | tee "$OUT/few_queries.txt"
    ;;
  kernels)
    mlx_env
    unset MLX_CUDA_USE_CUDNN_SDPA
    timeout 200 $PY scripts/cuda/prefill_kernels.py --out "$OUT/prefill_kernels.md"
    ;;
  prompt)
    mlx_env
    unset MLX_CUDA_USE_CUDNN_SDPA
    timeout 240 $PY scripts/cuda/prompt_gpu.py --out "$OUT/prompt_cuda.md"
    ;;
  tiled)
    # The tiled kernel's times (checkers built with -DQSDPA_TIME_ONLY from
    # trees that differ in it).
    side_by_side tiled_times.txt build/device/prefill/time_*
    ;;
  decode)
    QSDPA_DECODE=1 side_by_side decode_times.txt build/device/variants/time_*
    # Each variant's turbo4 pass 1 as SASS, to count its instructions.
    if command -v cuobjdump >/dev/null; then
      for c in build/device/variants/time_*; do
        sass_of "$c" "$TURBO4_PASS1" >"$OUT/sass_$(basename "$c").txt" 2>&1 || true
      done
    fi
    ;;
  first)
    # FIRST_T0: when the call began, where a step ran before this one.
    t0=${FIRST_T0:-$(date +%s)}
    bash "$ROOT/scripts/cuda/device.sh" setup >"$OUT/setup.txt" 2>&1
    # Beside the build, at the lowest priority: the checkers' float64
    # references take CPU time that the build needs (2026-12-06: the quick
    # build got to 215 of its 249 steps in 480 s with them at full priority).
    (
      renice -n 19 $BASHPID >/dev/null
      # Each step may fail or be cut short without ending the others (set
      # -e): on 2026-12-06 a checker that ran past its 240 s left no decode
      # times and no profile. The profile and the variants go first, and the
      # checkers get what is left of the build's time.
      prof=$(profiled_checker)
      if command -v ncu >/dev/null && [ -n "$prof" ]; then
        echo "$prof" >"$OUT/ncu_of.txt"
        QSDPA_PROFILE=turbo4 timeout 90 ncu --set full -k regex:mma_pass1 \
          --launch-skip 3 --launch-count 1 "$prof" \
          >"$OUT/ncu_turbo4.txt" 2>&1 || true
        # What the warps wait on, reason by reason (the full set's text
        # names only the first), in cycles per issued instruction.
        QSDPA_PROFILE=turbo4 timeout 60 ncu -k regex:mma_pass1 --launch-skip 3 \
          --launch-count 1 --metrics \
          'regex:smsp__average_warps_issue_stalled_.*_per_issue_active\.ratio' \
          "$prof" >"$OUT/ncu_turbo4_stalls.txt" 2>&1 || true
      fi
      if [ -d build/device/variants ]; then
        DEADLINE=$((t0 + 400)) bash "$ROOT/scripts/cuda/device.sh" decode \
          >/dev/null 2>&1 || true
      fi
      if [ -d build/device/prefill ]; then
        DEADLINE=$((t0 + 400)) bash "$ROOT/scripts/cuda/device.sh" tiled \
          >/dev/null 2>&1 || true
      fi
      for c in build/device/check_*; do
        [ -x "$c" ] || continue
        left=$((530 - $(date +%s) + t0))
        timeout $((left > 60 ? left : 60)) "$c" >"$OUT/$(basename "$c").txt" 2>&1 || true
      done
    ) &
    built=1
    QUICK_QMM=1 timeout 540 bash "$ROOT/scripts/cuda/device.sh" build || built=0
    wait
    # Then as much of the benchmarks and the tests as the call has time for
    # (the decode table first: on 2026-12-06 the tests took the rest), or
    # the steps FIRST_STEPS names, in its order.
    for step in ${FIRST_STEPS:-bench overhead test prefill}; do
      left=$((588 - $(date +%s) + t0))
      [ $built = 1 ] && [ $left -gt 30 ] || break
      timeout $left bash "$ROOT/scripts/cuda/device.sh" $step || true
    done
    ;;
  bundle)
    list=$(mktemp)
    (cd "$OUT" && find . -type f ! -name outputs.tar.gz | sort >"$list" &&
      tar -czf outputs.tar.gz -T "$list" && xargs rm -f <"$list" &&
      find . -mindepth 1 -type d -empty -delete)
    echo "$(wc -l <"$list") files in $OUT/outputs.tar.gz"
    rm -f "$list"
    ;;
  *) echo "unknown step $1" >&2; exit 2 ;;
esac
