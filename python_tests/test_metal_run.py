"""The series' Metal kernels executed on the CPU from their own source
(scripts/metal/metal_run.py), and the shim they are compiled against."""

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
from conftest import ROOT, pinned_base

sys.path.insert(0, str(ROOT / "scripts" / "metal"))
import cases as C  # noqa: E402
import host  # noqa: E402
import metal_run  # noqa: E402
import msl  # noqa: E402

# float -> bfloat as Metal converts: round to nearest, ties to even. A
# truncating conversion fails all but the second, fifth and seventh.
BFLOAT_ROUNDING = """
constexpr uint16_t bf(uint32_t u) {
  return bfloat(__builtin_bit_cast(float, u)).bits_;
}
static_assert(bf(0x3F818000u) == 0x3F82, "a tie rounds to even, up");
static_assert(bf(0x3F808000u) == 0x3F80, "a tie rounds to even, down");
static_assert(bf(0x3F80C000u) == 0x3F81, "above half rounds up");
static_assert(bf(0xBF80C000u) == 0xBF81, "negative, above half");
static_assert(bf(0x3F807FFFu) == 0x3F80, "below half rounds down");
static_assert(bf(0x7F7FFFFFu) == 0x7F80, "overflow rounds to infinity");
static_assert(bf(0x7FC00001u) == 0x7FC0, "a NaN stays a NaN");
static_assert(bf(0x7F800001u) == 0x7FC0, "a signalling NaN is quieted");
"""


def test_shim_rounds_float_to_bfloat_to_nearest_even(tmp_path):
    src = tmp_path / "bfloat_rounding.cpp"
    src.write_text(BFLOAT_ROUNDING)
    p = subprocess.run(
        [msl.CLANG, "--target=spir64", *msl.CLCPP, "-fsyntax-only"]
        + ["-isystem", str(msl.SHIM), "-include", "metal_shim.h", str(src)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr


# The executor -------------------------------------------------------------

TOOL = ROOT / "scripts" / "metal" / "metal_run.py"
# The MLX tree whose kernels run: the series' mlx/, or MLX_TREE (another
# checkout, e.g. a worktree with kernels not yet in the series).
MLX = Path(os.environ.get("MLX_TREE") or ROOT / "mlx").resolve()
KERNELS = msl.KERNELS
CASES = C.SETS["sdpa"]()
QCASES = C.SETS["quantize"]()
# What --tree needs of an MLX tree: the kernels and the host code they are
# dispatched by.
TREE_FILES = [
    "mlx/backend/metal/kernels",
    C.DISPATCH,
    C.QDISPATCH,
    "mlx/backend/common/compiled.cpp",
]
# The codebooks that the C++ and Metal code share (not in the base).
CODEBOOKS = "mlx/backend/common/turbo_codebooks.h"


def run_by_name(cases):
    """The cases run once on mlx/, by case name (a list: one row per
    schedule)."""
    rows, _, _ = metal_run.run(MLX, cases, log=lambda line: None)
    by_name = {}
    for row in rows:
        by_name.setdefault(row["case"].name, []).append(row)
    return by_name


@pytest.fixture(scope="module")
def runs():
    """Every attention case."""
    return run_by_name(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_kernel_matches_float64_reference(runs, case):
    """The output, and for quantized SDPA the output again and the
    log-sum-exp with the log-sum-exp asked for (every case checks it)."""
    rows = runs[case.name]
    assert [r["schedule"] for r in rows] == list(case.schedules)
    for row in rows:
        assert row["ok"], C.describe(row)
        assert ("lse" in row) == (case.key is not None), C.describe(row)


def test_the_lse_matrix_covers_the_issue():
    """The log-sum-exp is checked for both kernels (the 2-pass vector kernel
    and the tiled one), every format and mixed pair, every dtype, both masks
    with fully masked rows, sinks and causal."""
    lse = [c for c in CASES if c.key is not None]
    for dispatch in ("quant_sdpa_vector_2pass", "quant_sdpa_full"):
        cs = [c for c in lse if c.dispatch == dispatch]
        assert set(C.FORMATS) <= {c.key for c in cs}
        assert any(c.value and c.value != c.key for c in cs)
        assert {c.dtype for c in cs} == set(C.DTYPES)
        assert {c.mask for c in cs if c.fully_masked} == {"bool", "additive"}
        assert any(c.sinks for c in cs) and any(c.causal for c in cs)


FULL_LSE = [
    c
    for c in CASES
    if c.key is not None and (c.fully_masked or c.sinks or c.causal or c.mask)
]


@pytest.mark.parametrize("case", FULL_LSE[::4], ids=lambda c: c.name)
def test_lse_reference_is_what_the_cpu_gives(case):
    """The float64 log-sum-exp reference is MLX's (the CPU build's
    return_lse on the same inputs): -inf exactly where the CPU has it (rows
    that see no key), the sink's logit for a fully masked row with sinks,
    and within the tolerance elsewhere."""
    inputs = C.prepare(case)
    ref, cpu = inputs.lse_reference, inputs.cpu_lse
    assert ref.shape == (case.B, case.Hq, case.Lq)
    if cpu is None:
        pytest.skip("the CPU build has no return_lse")
    np.testing.assert_array_equal(ref == -np.inf, cpu == -np.inf)
    for b, h, i in C.masked_rows(case):
        if case.sinks:
            sink = C._f64(C._np(inputs.floats["sinks"]), case.dtype)[h]
            assert ref[b, h, i] == sink
        elif not case.mask_min:
            assert ref[b, h, i] == -np.inf
    assert C.lse_error(cpu, ref) <= case.tolerance


def test_lse_error_rejects_what_is_wrong():
    """lse_error: garbage (NaN), a row of no key that is not -inf, a finite
    row at -inf, and an error beyond the tolerance are caught; a row that
    weighs nothing may be any value that weighs nothing."""
    ref = np.array([1.5, -np.inf, -3.4e38, 0.25])
    assert C.lse_error(ref.copy(), ref) == 0
    assert C.lse_error(np.array([1.5, -np.inf, -np.inf, 0.25]), ref) == 0
    for bad in (
        [np.nan, -np.inf, -3.4e38, 0.25],
        [1.5, -3.4e38, -3.4e38, 0.25],
        [1.5, -np.inf, -3.4e38, -np.inf],
        [1.5, -np.inf, 2.0, 0.25],
    ):
        assert C.lse_error(np.array(bad), ref) == float("inf")
    assert C.lse_error(np.array([1.5, -np.inf, -3.4e38, 0.26]), ref) > 5e-3


def test_transposed_caches_are_copied_unless_their_rows_are_packed(runs):
    """A (B, N, H, X) cache transposed to (B, H, N, X): eval_gpu copies its
    codes, scales and biases when H > 1 (their rows are H apart) and passes
    them uncopied when H == 1."""
    cases = [c for c in CASES if c.kv_transposed]
    assert any(c.B == 1 and c.Hkv > 1 for c in cases)
    assert any(c.Hkv == 1 and c.B > 1 for c in cases)
    for case in cases:
        expected = []
        if case.Hkv > 1:
            for name, fmt in (("k", case.key), ("v", case.vfmt)):
                expected += [name, f"{name}_scales"]
                expected += [f"{name}_biases"] if fmt.mode == "affine" else []
        for row in runs[case.name]:
            assert row["copied"] == expected, C.describe(row)


@pytest.fixture(scope="module")
def quant_runs():
    """The TurboQuant quantize and dequantize cases."""
    return run_by_name(QCASES)


@pytest.mark.parametrize("case", QCASES, ids=lambda c: c.name)
def test_turbo_quant_kernel_matches_cpu_kernel(quant_runs, case):
    """Codes bit for bit but at ties, scales to the dtype's rounding, zero
    vectors scale 0, dequantized values bit for bit (cases.check_quant)."""
    rows = quant_runs[case.name]
    assert [r["schedule"] for r in rows] == list(case.schedules)
    for row in rows:
        assert row["ok"], C.describe(row)
        if case.layout != "contiguous":
            assert row["copied"], "the host code did not copy the strided input"


def test_turbo_quant_matrix_covers_the_issue():
    for dispatch in ("turbo_quantize", "turbo_dequantize"):
        cs = [c for c in QCASES if c.dispatch == dispatch]
        assert {(c.mode, c.dtype, c.D) for c in cs} >= {
            (m, t, d)
            for m in ("turbo3", "turbo4")
            for t in C.DTYPES
            for d in (32, 64, 96, 128, 192, 256)
        }
        assert any(c.rows % 2 for c in cs) and any(c.rows == 1 for c in cs)
        assert {c.layout for c in cs} >= {"contiguous", "transposed"}
        assert any("sg_greedy" in c.schedules for c in cs)
    # Zero vectors and large values in every mode and dtype.
    big = [c for c in QCASES if c.dispatch == "turbo_quantize" and c.rows >= 7]
    assert {(c.mode, c.dtype) for c in big} == {
        (m, t) for m in ("turbo3", "turbo4") for t in C.DTYPES
    }
    x = C._quant_input(big[0])
    assert not x[0].any() and np.abs(x).max() >= 60000 * (1 - 1e-6)


def test_tie_detection_flags_only_coordinates_at_a_boundary():
    """Ties are coordinates within the rounding of the norm of a boundary:
    a coordinate exactly at one is, one a little off is not."""
    D, bits = 128, 4
    b = C._boundaries(bits)
    x = np.full((1, D), 1.0)
    x[0, 0] = 0  # the norm moves a little with x[0, 1]; solve for it
    # x * sqrt(D) / ||x|| = b[9] exactly for x[0, 1] = t: t^2 * D =
    # b^2 * (t^2 + D - 2)
    t = b[9] * np.sqrt((D - 2) / (D - b[9] ** 2))
    for value, tie in ((t, True), (t * (1 + 1e-4), False)):
        x[0, 1] = value
        u = x * np.sqrt(D) / np.linalg.norm(x)
        near = np.abs(u[0, 1] - b[9]) <= C.tie_window(D) * b[9]
        assert near == tie


def test_the_matrix_covers_the_issue():
    keys = {c.key for c in CASES} | {c.vfmt for c in CASES}
    assert set(C.FORMATS) <= keys
    quant = [c for c in CASES if c.key is not None]
    assert {(c.dtype, c.D) for c in quant} >= {
        (t, d) for t in C.DTYPES for d in (64, 128, 256)
    }
    assert any(c.value and c.value != c.key for c in quant)
    assert {c.Lq for c in quant} >= {1, 8} and any(c.B > 1 for c in quant)
    assert any(c.Hq // c.Hkv > 1 for c in quant)
    assert {c.mask for c in quant} >= {"bool", "additive"}
    assert any(c.sinks for c in quant) and any(c.causal for c in quant)
    assert any(c.N % 32 for c in quant) and any(c.N < c.blocks for c in quant)
    assert any("sg_greedy" in c.schedules for c in quant)
    assert any(c.q_transposed for c in quant)
    assert {c.dispatch for c in CASES} >= {"sdpa_vector", "sdpa_vector_2pass"}
    # Fully masked rows (issue 17): both masks, with and without sinks,
    # blocks without keys and blocks of several, more blocks, both schedules.
    masked = [c for c in quant if c.fully_masked]
    assert {(c.mask, c.sinks) for c in masked} == {
        (m, s) for m in ("bool", "additive") for s in (False, True)
    }
    assert any(c.N < 8 * c.blocks for c in masked)
    assert any(c.N > 8 * c.blocks for c in masked)
    assert any(c.blocks > 32 for c in masked) and any(c.B > 1 for c in masked)
    assert {c.dtype for c in masked} == set(C.DTYPES)
    assert any("sg_greedy" in c.schedules for c in masked)


def test_the_tiled_kernel_matrix_covers_the_issue():
    """quant_sdpa_full (more than 8 queries, issue 16): Lq 9 to 100, the
    causal chunk at the end of the keys, both masks with fully masked rows,
    sinks, GQA 1, 4 and 8, batches, every format and mixed pairs, every dtype
    and head dimension, transposed queries and caches, both schedules."""
    full = [c for c in CASES if c.dispatch == "quant_sdpa_full"]
    assert {9, 16, 33, 100, 512} <= {c.Lq for c in full}
    assert any(c.Lq % 32 for c in full) and any(c.Lq % 32 == 0 for c in full)
    assert any(c.causal and c.N > c.Lq for c in full)
    assert any(c.causal and c.N == c.Lq for c in full)
    assert {c.mask for c in full} >= {"bool", "additive"}
    assert {c.mask for c in full if c.fully_masked} == {"bool", "additive"}
    assert any(c.sinks for c in full)
    assert {c.Hq // c.Hkv for c in full} >= {1, 4, 8}
    assert any(c.B > 1 for c in full)
    assert set(C.FORMATS) <= {c.key for c in full} | {c.vfmt for c in full}
    assert any(c.value and c.value != c.key for c in full)
    assert {(c.dtype, c.D) for c in full} == {
        (t, d) for t in C.DTYPES for d in (64, 128, 256)
    }
    assert any(c.q_transposed for c in full) and any(c.kv_transposed for c in full)
    assert any("sg_greedy" in c.schedules for c in full)


# A kernel of SIMD-group matrices: loads (plain and transposed, from device
# and threadgroup memory), a multiply-accumulate, a store, the diagonal and
# filled constructors, and each lane's thread_elements written where Apple's
# layout (MLX's BaseMMAFrag::get_coord) puts them.
MATRIX_KERNEL = """
#include <metal_simdgroup_matrix>
#include <metal_stdlib>
#include "mlx/backend/metal/kernels/defines.h"
using namespace metal;

template <typename T>
[[kernel]] void matrices(
    const device T* a [[buffer(0)]],
    const device T* b [[buffer(1)]],
    const device T* c [[buffer(2)]],
    device T* d [[buffer(3)]],
    device T* lanes [[buffer(4)]],
    device T* diag [[buffer(5)]],
    uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float tb[64];
  for (int i = lane; i < 64; i += 32) {
    tb[i] = b[i];
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  simdgroup_float8x8 A, B, C, D;
  simdgroup_load(A, a, 8);
  simdgroup_load(B, tb, 8, ulong2(0, 0), true);
  simdgroup_load(C, c, 8);
  simdgroup_multiply_accumulate(D, A, B, C);
  simdgroup_store(D, d, 8);
  short q = lane / 4;
  short row = (q & 4) + (lane / 2) % 4;
  short col = (q & 2) * 2 + (lane % 2) * 2;
  lanes[row * 8 + col] = A.thread_elements()[0];
  lanes[row * 8 + col + 1] = A.thread_elements()[1];
  simdgroup_float8x8 I(2.0f);
  simdgroup_float8x8 F = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
  simdgroup_multiply_accumulate(D, I, A, F);
  simdgroup_store(D, diag, 8);
}
"""


def test_executor_models_simdgroup_matrices(tmp_path):
    kernels = tmp_path / KERNELS
    kernels.mkdir(parents=True)
    shutil.copy(MLX / KERNELS / "defines.h", kernels)
    (kernels / "matrices.metal").write_text(
        MATRIX_KERNEL + 'instantiate_kernel("matrices", matrices, float)\n'
    )
    lib = metal_run.build(
        tmp_path, {"matrices.metal": {"matrices"}}, tmp_path / "cache", lambda s: None
    )
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((8, 8)).astype(np.float32) for _ in range(3))
    d, lanes, diag = (np.full((8, 8), np.nan, np.float32) for _ in range(3))
    bufs = {0: a, 1: b, 2: c, 3: d, 4: lanes, 5: diag}
    launch = host.Launch("matrices", {}, bufs, (1, 1, 1), (32, 1, 1))
    for schedule in metal_run.SCHEDULES:
        d[...] = lanes[...] = diag[...] = np.nan
        metal_run.Executor(lib).launch(launch, schedule)
        np.testing.assert_allclose(d, a @ b.T + c, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(lanes, a)
        np.testing.assert_allclose(diag, 2 * a + 1, rtol=1e-6)


FULLY_MASKED = [c for c in CASES if c.fully_masked]


@pytest.mark.parametrize("case", FULLY_MASKED, ids=lambda c: c.name)
def test_fully_masked_reference_is_what_sdpa_gives(case):
    """The references of rows whose keys are all masked out are what
    mx.fast.scaled_dot_product_attention gives on the float (dequantized)
    inputs: the mean of the values with a boolean mask, NaN with an
    additive one of -inf (the mean with one of the lowest finite value), 0
    with sinks."""
    inputs = C.prepare(case)
    f = inputs.floats

    def f32(a):
        return None if a is None else mx.array(np.asarray(a), dtype=mx.float32)

    mask = f["mask"]
    if mask is not None and mask.dtype != mx.bool_:
        mask = mask.astype(mx.float32)
    sinks = None if f["sinks"] is None else f["sinks"].astype(mx.float32)
    sdpa = mx.fast.scaled_dot_product_attention(
        f32(f["q"]),
        f32(f["k"]),
        f32(f["v"]),
        scale=f["scale"],
        mask=mask,
        sinks=sinks,
        stream=mx.cpu,
    )
    sdpa = np.array(sdpa).astype(np.float64)
    ref = inputs.reference
    np.testing.assert_array_equal(np.isnan(sdpa), np.isnan(ref))
    rows = C.masked_rows(case)
    assert rows
    for b, h, i in rows:
        if case.sinks:
            assert not ref[b, h, i].any()
        elif case.mask == "additive" and not case.mask_min:
            assert np.isnan(ref[b, h, i]).all()
        else:
            mean = f["v"][b, h // (case.Hq // case.Hkv)].mean(0)
            np.testing.assert_allclose(ref[b, h, i], mean, rtol=1e-12, atol=1e-12)
    finite = ~np.isnan(ref)
    top = np.abs(ref[finite]).max()
    assert np.abs(sdpa[finite] - ref[finite]).max() / top < 1e-5


@pytest.mark.parametrize("fmt", [C.TURBO3, C.TURBO4, C.AFFINE4, C.AFFINE8_32, C.MXFP4])
def test_reference_decodes_as_mlx_does(fmt):
    """The references' own decoding (codebooks from the solver) agrees with
    the CPU build's mx.dequantize."""
    x = mx.random.normal((3, 128), key=mx.random.key(1))
    parts = C.quantize(x, fmt)
    mine = C.dequantize([np.array(a) for a in parts], fmt, 128, "float32")
    kw = dict(mode=fmt.mode, stream=mx.cpu)
    if not fmt.mode.startswith("turbo"):
        kw.update(group_size=fmt.group_size, bits=fmt.bits)
    theirs = mx.dequantize(*parts[:2], parts[2] if len(parts) > 2 else None, **kw)
    theirs = np.array(theirs.astype(mx.float32))
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-6)


def test_host_side_is_read_from_the_dispatch_code(tmp_path):
    """Moving a buffer index in MLX's C++ moves it in the executor: nothing
    repeats the host code."""
    case = C.Case(key=C.TURBO4)
    tree = copy_tree(tmp_path)
    inputs, launches = metal_run.plan(tree, case)
    assert [launch.kernel for launch in launches] == [
        "quant_sdpa_vector_2pass_1_float_128_128",
        "quant_sdpa_vector_2pass_2_float_128",
    ]
    assert launches[0].group == (32, 4, 1) and launches[0].grid == (1, 1, 32)
    # Asked for the log-sum-exp, the second pass writes it to buffer 5.
    lse = inputs.lse_launches
    assert [launch.kernel for launch in lse] == [x.kernel for x in launches]
    assert launches[1].function_constants[35] is False
    assert launches[1].buffers.get(5) is not inputs.lse  # the first pass's
    assert lse[1].function_constants[35] is True
    assert lse[1].buffers[5] is inputs.lse
    full = C.Case(key=C.TURBO4, Lq=9, N=20, dispatch="quant_sdpa_full")
    full_inputs, full_launches = metal_run.plan(tree, full)
    assert full_launches[0].function_constants[35] is False
    assert 26 not in full_launches[0].buffers
    assert full_inputs.lse_launches[0].function_constants[35] is True
    assert full_inputs.lse_launches[0].buffers[26] is full_inputs.lse
    assert 9 in launches[0].buffers and 23 not in launches[0].buffers
    edit(
        tree / C.DISPATCH,
        "compute_encoder.set_bytes(N, 9);",
        "compute_encoder.set_bytes(N, 23);",
    )
    _, launches = metal_run.plan(tree, case)
    assert 9 not in launches[0].buffers and int(launches[0].buffers[23][0]) == 100
    edit(
        tree / C.DISPATCH,
        "size_t k_stride = k.shape(1) == 1",
        "size_t k_stride = frobnicate() + k.shape(1) == 1",
        times=2,  # quant_sdpa_vector_2pass and quant_sdpa_full
    )
    with pytest.raises(host.HostError, match="cannot follow"):
        metal_run.plan(tree, case)


def test_host_reads_the_cxx_it_meets():
    m = host.Arr(np.zeros((2, 1, 3, 5)), "bool_")
    ns = {"m": m, "mask": host.Opt(m), "bool_": "bool_"}
    nested = "m.shape(1) > 1 ? m.strides(1) : (m.shape(0) > 1 ? m.strides(0) : 0)"
    assert eval(host.to_python(nested), {}, ns) == 15
    assert eval(host.to_python("!(*mask).flags().row_contiguous"), {}, ns) is False
    assert eval(host.to_python("m.shape(2) / 2 && (*mask).dtype() == bool_"), {}, ns)
    body = "int a = 1; if (a > 0) { x(1); } else { y(2); } for (;;) { z(3); }"
    assert host.statements(body) == [
        ((), "int a = 1"),
        (("a > 0",), "x(1)"),
        (("!(a > 0)",), "y(2)"),
        ((None,), "z(3)"),
    ]


# Each quantized SDPA dispatcher and its kernel at head dimension 128.
FORMAT_KERNELS = {
    "quant_sdpa_vector_2pass": "quant_sdpa_vector_2pass_1_float_128_128",
    "quant_sdpa_full": "quant_sdpa_full_float_128",
}


@pytest.mark.parametrize("dispatch", FORMAT_KERNELS)
def test_the_dispatch_turns_down_the_pairs_the_kernel_lacks(tmp_path, dispatch):
    """For every pair of formats that quantized SDPA accepts, at head
    dimension 128: the dispatch code throws (quant_sdpa_kernel_has, read
    from the C++) exactly for the pairs for which the executed kernel,
    launched without that check, writes nothing."""
    kernel = FORMAT_KERNELS[dispatch]
    source = metal_run.DISPATCHERS[dispatch][1]
    lib = metal_run.build(MLX, {source: {kernel}}, log=lambda line: None)
    executor = metal_run.Executor(lib)
    unchecked = copy_tree(tmp_path)
    edit(
        unchecked / C.DISPATCH,
        "if (!quant_sdpa_kernel_has(kf, vf, q.shape(-1))) {",
        "if (false) {",
        times=len(FORMAT_KERNELS),
    )
    case = C.Case(key=C.TURBO4, N=8, Lq=2, dispatch=dispatch)
    inputs = C.prepare(case)
    args = inputs.host_args
    # Room for any format's codes, scales and biases (zeros).
    for name in ("k", "v"):
        args[name] = host.Arr(np.zeros((1, 1, case.N, 32), np.uint32), "uint32")
        room = np.zeros((1, 1, case.N, 128), np.float32)
        args[f"{name}_scales"] = host.Arr(room, "float32")
        args[f"{name}_biases"] = host.Opt(host.Arr(room.copy(), "float32"))
    supported = set()
    for kf, vf in itertools.product(C.ACCEPTED, repeat=2):
        args["kf"], args["vf"] = C._Format(kf, 128), C._Format(vf, 128)
        try:
            host.follow(
                MLX / C.DISPATCH,
                case.dispatch,
                args,
                C.helpers(MLX, case),
                inputs.temporaries,
            )
            thrown = False
        except host.Thrown as e:
            assert "No kernel for keys in" in str(e)
            thrown = True
        launches = host.follow(
            unchecked / C.DISPATCH,
            case.dispatch,
            args,
            C.helpers(unchecked, case),
            inputs.temporaries,
        )
        assert launches[0].kernel == kernel
        inputs.reset()
        executor.launch(launches[0])
        # The first pass's sums, or the output of the one-pass kernel.
        out = inputs.buffers["sums"].data if "sums" in inputs.buffers else inputs.out
        written = not np.isnan(out).any()
        assert written or np.isnan(out).all(), (kf, vf)
        assert thrown != written, (kf, vf, "thrown" if thrown else "not thrown")
        if written:
            supported.add((kf.label(), vf.label()))
    same = {(f.label(), f.label()) for f in C.ACCEPTED}
    mixed = {
        (k, v)
        for k in ("affine8g32", "affine8g64", "turbo4")
        for v in ("turbo3", "turbo4")
    }
    assert supported == same | mixed


def test_host_refuses_what_it_cannot_follow(tmp_path):
    tree = copy_tree(tmp_path)
    edit(
        tree / C.DISPATCH,
        "  if (has_sinks) {\n    compute_encoder.set_input_array(*sinks, 22);",
        "  for (int i = 0; i < has_sinks; i++) {\n"
        "    compute_encoder.set_input_array(*sinks, 22);",
    )
    with pytest.raises(host.HostError, match="in a loop or else-if"):
        metal_run.plan(tree, C.Case(key=C.TURBO4))


def copy_tree(tmp_path):
    tree = tmp_path / "mlx"
    for f in [*TREE_FILES, CODEBOOKS, C.FORMAT_TABLE]:
        (tree / f).parent.mkdir(parents=True, exist_ok=True)
        if (MLX / f).is_dir():
            shutil.copytree(MLX / f, tree / f)
        else:
            shutil.copy(MLX / f, tree / f)
    return tree


def edit(path, text, replacement, times=1):
    source = path.read_text()
    assert (
        source.count(text) == times
    ), f"{path.name} no longer has {text!r} {times} time(s)"
    path.write_text(source.replace(text, replacement))


# (file, text, replacement, what the run must say)
MUTANTS = {
    # The codebooks the C++ and Metal code share (the references take theirs
    # from the solver; the build cache must see the change).
    "changed_turbo4_centroid": (
        CODEBOOKS,
        "  -0.942340434f, \\",
        "  -0.952340434f, \\",
        "BAD quant-turbo4-float32-D128",
    ),
    "swapped_turbo4_centroids": (
        f"{KERNELS}/quantized_utils.h",
        "return OutT(turbo4_centroids[v]);",
        "return OutT(turbo4_centroids[v ^ 1]);",
        "BAD quant-turbo4-float32-D128",
    ),
    # Round-robin scheduling hides it; the greedy schedule does not.
    "removed_barrier": (
        f"{KERNELS}/sdpa_vector.h",
        "    threadgroup_barrier(mem_flags::mem_threadgroup);\n"
        "    o[i] = simd_sum(outputs[simd_gid * BD + simd_lid]);\n",
        "    o[i] = simd_sum(outputs[simd_gid * BD + simd_lid]);\n",
        "[sg_greedy]: metal inf",
    ),
    "simd_sum_in_divergent_code": (
        f"{KERNELS}/sdpa_vector.h",
        "  U global_sum = simd_sum(sg_sum);\n",
        "  U global_sum = simd_lid < 16 ? simd_sum(sg_sum) : sg_sum;\n",
        "meet at different collectives",
    ),
    # A block that kept no key writes what it did before issue 17: zeros.
    "fully_masked_rows_zero": (
        f"{KERNELS}/sdpa_vector.h",
        "if ((bool_mask || float_mask) && !has_sinks && global_sum == 0) {",
        "if ((bool_mask || float_mask) && !has_sinks && global_sum < 0) {",
        (
            "BAD quant-turbo4-float32-D128-B1-H4/1-Lq2-N77-blocks32-bool-fullmask",
            "BAD quant-turbo4-float32-D128-B1-H4/1-Lq2-N77-blocks32-additive-fullmask",
        ),
    ),
    # eval_gpu as it was before "Copy quantized SDPA keys and values whose
    # rows are not packed": a transposed cache reaches the kernel uncopied.
    # The log-sum-exp: the tiled kernel's left in log2 units, a fully masked
    # row's (boolean mask) at the lowest finite score instead of -inf, the
    # first block's sum for the whole row's.
    "lse_in_log2_units": (
        f"{KERNELS}/quant_sdpa_full.h",
        ": max_score / M_LOG2E_F + metal::log(sum_score);",
        ": max_score + metal::log(sum_score);",
        "BAD quant_sdpa_full-turbo4-float32-D128-B1-H4/1-Lq10-N50-bool-fullmask",
    ),
    "lse_of_fully_masked_row_finite": (
        f"{KERNELS}/sdpa_vector.h",
        "lse[q_offset] = no_key || max_score == Limits<U>::finite_min",
        "lse[q_offset] = no_key",
        "BAD quant-turbo4-float32-D128-B1-H4/1-Lq2-N77-blocks32-bool-fullmask",
    ),
    "lse_of_first_block": (
        f"{KERNELS}/sdpa_vector.h",
        ": max_score + metal::log(sum_exp_score);",
        ": max_score + metal::log(sums[0]);",
        "BAD quant-turbo4-float32-D128-B1-H4/1-Lq1-N100-blocks32",
    ),
    "kv_rows_not_checked": (
        C.DISPATCH,
        "if (strides[3] != 1 || strides[2] != shape[3]) {",
        "if (strides.back() != 1) {",
        "BAD quant-turbo4-float32-D128-B1-H8/4-Lq1-N90-blocks32-kvT",
    ),
}


def metal_run_cli(*args):
    return subprocess.run(
        [sys.executable, TOOL, *map(str, args)], capture_output=True, text=True
    )


def test_the_bases_kernels_pass(tmp_path):
    """A control: the base's own quantized kernels (affine and MXFP4, from
    PR #3026), with the base's own host code."""
    archive = subprocess.run(
        ["git", "-C", MLX, "archive", pinned_base(), *TREE_FILES],
        capture_output=True,
        check=True,
    )
    tree = tmp_path / "base"
    tree.mkdir()
    subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, check=True)
    assert not (tree / KERNELS / "turbo_quant.h").exists()
    p = metal_run_cli("--tree", tree, "--set", "base")
    assert p.returncode == 0, p.stdout + p.stderr


def test_mutant_cases_pass_on_the_tree(tmp_path):
    p = metal_run_cli("--tree", copy_tree(tmp_path), "--set", "mutants")
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("mutant", MUTANTS)
def test_a_broken_kernel_fails(tmp_path, mutant):
    name, text, replacement, messages = MUTANTS[mutant]
    tree = copy_tree(tmp_path)
    edit(tree / name, text, replacement)
    p = metal_run_cli("--tree", tree, "--set", "mutants")
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "out of tolerance or failing" in out, out
    for message in [messages] if isinstance(messages, str) else messages:
        assert message in out, out


# (file, text, replacement, cases (-k), what the run must say)
QUANT_MUTANTS = {
    "moved_turbo4_boundaries": (
        f"{KERNELS}/turbo_quantized.h",
        "turbo4_boundaries[i]);",
        "turbo4_boundaries[i] * 1.01f);",
        "turbo4-float32-D128",
        "BAD turbo_quantize-turbo4-float32-D128",
    ),
    "lost_bits_across_words": (
        f"{KERNELS}/turbo_quantized.h",
        ": shift > -bits     ? code >> -shift",
        ": shift > -bits     ? 0",
        "turbo3-float32-D128",
        "BAD turbo_quantize-turbo3-float32-D128",
    ),
    "zero_vector_unguarded": (
        f"{KERNELS}/turbo_quantized.h",
        "float inv_rms = norm_sq > 0",
        "float inv_rms = norm_sq >= 0",
        "quantize-turbo4-float16-D128-rows33",
        "BAD turbo_quantize-turbo4-float16-D128-rows33",
    ),
    "norm_summed_in_float16": (
        f"{KERNELS}/turbo_quantized.h",
        "    float x = w[i];\n    norm_sq += x * x;",
        "    T x = w[i];\n    norm_sq += float(x * x);",
        "quantize-turbo4-float16-D128-rows33",
        "BAD turbo_quantize-turbo4-float16-D128-rows33",
    ),
    "scale_index_off": (
        f"{KERNELS}/turbo_quantized.h",
        "float scale = scales[offset / (dim / pack_factor)];",
        "float scale = scales[offset / dim];",
        "dequantize-turbo4-float32-D128",
        "BAD turbo_dequantize-turbo4-float32-D128",
    ),
    "strided_input_not_copied": (
        C.QDISPATCH,
        "  auto w = ensure_row_contiguous(w_pre, d, s);\n  out.set_data(allocator::malloc(out.nbytes()));\n  scales.set_data(",
        "  auto w = w_pre;\n  out.set_data(allocator::malloc(out.nbytes()));\n  scales.set_data(",
        "quantize-turbo4-float16-D64-rows21-transposed",
        "BAD turbo_quantize-turbo4-float16-D64-rows21-transposed",
    ),
}


@pytest.mark.parametrize("mutant", QUANT_MUTANTS)
def test_a_broken_turbo_quant_kernel_fails(tmp_path, mutant):
    name, text, replacement, select, message = QUANT_MUTANTS[mutant]
    tree = copy_tree(tmp_path)
    edit(tree / name, text, replacement)
    p = metal_run_cli("--tree", tree, "--set", "quantize", "-k", select)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert "out of tolerance or failing" in out and message in out, out


def test_a_truncating_bfloat_conversion_fails(tmp_path):
    """Executed, the shim's former float-to-bfloat truncation is out of
    tolerance too (results/metal_run.md has the figures)."""
    bf16 = [c for c in CASES if c.dtype == "bfloat16" and c.D == 64]
    shim = metal_run.truncating_shim(tmp_path)
    rows, _, _ = metal_run.run(MLX, bf16, log=lambda line: None, shim=shim)
    assert any(not r["ok"] for r in rows), [C.describe(r) for r in rows]
