"""Quantized SDPA with many queries on a CUDA GPU against float64 attention
over the decoded cache, in every format pair the GPU kernels read, with GQA,
batches, causal chunks at the end of the cache, boolean and additive masks
and sinks; and that the fallback, which dequantizes the whole cache, did not
run. Two paths serve these calls: for 4096 query rows or more where cuDNN's
SDPA takes the decoded keys (no mask array, head dims up to 128, cuDNN on),
chunks of keys decoded into a scratch buffer and attended by cuDNN; else the
tiled tensor-core kernel.
scripts/cuda/device.sh runs this file with cuDNN off (the tiled kernel) and
on. Skipped without a CUDA GPU (CI has none). The float64 reference, the
masks and the inputs are the CPU tests', over this file's formats."""

import itertools
import os

import mlx.core as mx
import numpy as np
import pytest
import test_quantized_prefill as cpu_tests
from test_cuda import scores64
from test_quantized_prefill import extra_peak, masks, reference

pytestmark = pytest.mark.skipif(not mx.cuda.is_available(), reason="needs a CUDA GPU")

FORMATS = {
    "turbo3": dict(mode="turbo3"),
    "turbo4": dict(mode="turbo4"),
    "affine4 g32": dict(mode="affine", group_size=32, bits=4),
    "affine4 g64": dict(mode="affine", group_size=64, bits=4),
    "affine8 g32": dict(mode="affine", group_size=32, bits=8),
    "affine8 g64": dict(mode="affine", group_size=64, bits=8),
}
# Each format alone, and the mixed pairs of qsdpa_gpu_pair.
PAIRS = [(f, f) for f in FORMATS] + [
    ("affine8 g32", "turbo4"),
    ("affine8 g64", "turbo3"),
    ("turbo4", "turbo3"),
]
# Relative to the outputs' norm: averages over many keys are small, so an
# absolute tolerance would hide lost keys.
TOL = {mx.float16: 5e-3, mx.bfloat16: 2e-2}


def case(*args, **kwargs):
    return cpu_tests.case(*args, formats=FORMATS, **kwargs)


def attend(*args, **kwargs):
    return cpu_tests.attend(*args, formats=FORMATS, **kwargs)


def check(out, expected, dtype, what=""):
    out = np.array(out.astype(mx.float32), dtype=np.float64)
    nan = np.isnan(expected)
    assert np.array_equal(np.isnan(out), nan), what
    error = np.linalg.norm(out[~nan] - expected[~nan])
    error /= np.linalg.norm(expected[~nan])
    assert error < TOL[dtype], f"{what}: {error:.2e}"


# Every format pair with every query length, alternating GQA 1/4/8, dtypes
# and causal or not; L_k from just above L_q to 4K.
LENGTHS = [(9, 40), (16, 300), (33, 1000), (100, 777), (512, 4096)]
GRID = [
    (kf, vf, L_q, L_k)
    for (kf, vf), (L_q, L_k) in itertools.product(PAIRS, LENGTHS)
    if L_q < 512 or kf == vf or kf == "affine8 g32"
]


@pytest.mark.parametrize("kf,vf,L_q,L_k", GRID)
def test_formats_and_lengths(kf, vf, L_q, L_k):
    i = GRID.index((kf, vf, L_q, L_k))
    gqa = (1, 4, 8)[i % 3]
    dtype = (mx.float16, mx.bfloat16)[i % 2]
    causal = (i // 2) % 2 == 0
    Hkv = 1 if L_q == 512 else 2
    D = 128
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, Hkv * gqa, Hkv, L_q, L_k, D, kf, vf, dtype, seed=i
    )
    out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, causal=causal)
    assert out.shape == q.shape and out.dtype == dtype
    check(out, reference(q, k_hat, v_hat, D**-0.5, causal=causal), dtype)


@pytest.mark.parametrize("D", [64, 128, 256])
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize(
    "kf,vf", [("turbo4", "turbo4"), ("affine8 g32", "turbo3"), ("affine4 g64",) * 2]
)
def test_head_dims(D, dtype, kf, vf):
    q, k_parts, v_parts, k_hat, v_hat = case(2, 8, 2, 37, 333, D, kf, vf, dtype, seed=D)
    out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, causal=True)
    check(out, reference(q, k_hat, v_hat, D**-0.5, causal=True), dtype)


@pytest.mark.parametrize(
    "L_q,L_k", [(9, 9), (16, 16), (100, 100), (33, 64), (100, 4096), (512, 3000)]
)
@pytest.mark.parametrize("fmt", ["turbo4", "affine4 g64"])
def test_causal_chunk_at_the_end(L_q, L_k, fmt):
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, L_q, L_k, 128, fmt, fmt, mx.float16, seed=L_q + L_k
    )
    out = attend(q, k_parts, v_parts, fmt, fmt, scale=0.1, causal=True)
    check(out, reference(q, k_hat, v_hat, 0.1, causal=True), mx.float16)


def test_more_queries_than_keys_falls_back():
    # The first queries of a causal chunk longer than the cache see no key:
    # the fallback gives them what scaled_dot_product_attention does.
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, 20, 12, 64, "turbo4", "turbo4", mx.float16, seed=3
    )
    out = attend(q, k_parts, v_parts, "turbo4", "turbo4", scale=0.125, causal=True)
    k, v = (
        mx.dequantize(*p, mode="turbo4", dtype=mx.float16) for p in (k_parts, v_parts)
    )
    sdpa = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask="causal")
    assert mx.allclose(out, sdpa, atol=5e-3, rtol=5e-3).item()


@pytest.mark.parametrize("L_q,L_k", [(9, 100), (33, 500), (100, 1000)])
@pytest.mark.parametrize("fmt", ["turbo3", "turbo4", "affine8 g32"])
@pytest.mark.parametrize("gqa", [1, 4, 8])
def test_masks(L_q, L_k, fmt, gqa):
    Hq = 2 * gqa
    dtype = mx.float16
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, Hq, 2, L_q, L_k, 128, fmt, fmt, dtype, seed=L_q * gqa
    )
    for name, mask in masks(2, Hq, L_q, L_k, seed=L_q).items():
        if mask.dtype != mx.bool_:
            mask = mask.astype(dtype)
        out = attend(q, k_parts, v_parts, fmt, fmt, scale=0.1, mask=mask)
        check(out, reference(q, k_hat, v_hat, 0.1, mask=mask), dtype, name)


def test_fully_masked_rows():
    # Rows with every key masked: the mean of the values for a boolean mask,
    # NaN for an additive one, 0 with sinks; as scaled_dot_product_attention.
    q, k_parts, v_parts, k_hat, v_hat = case(
        1, 4, 2, 12, 200, 64, "turbo4", "turbo4", mx.float16, seed=5
    )
    keep = np.ones((1, 1, 12, 200), dtype=bool)
    keep[..., 3, :] = False
    keep[..., 7, 64:] = False
    keep = mx.array(keep)
    for mask, sinks in [
        (keep, None),
        (mx.where(keep, 0.0, -float("inf")).astype(mx.float16), None),
        (keep, mx.array([0.5, -1.0, 0.0, 2.0], dtype=mx.float16)),
    ]:
        kwargs = dict(scale=0.125, mask=mask, sinks=sinks)
        out = attend(q, k_parts, v_parts, "turbo4", "turbo4", **kwargs)
        check(out, reference(q, k_hat, v_hat, **kwargs), mx.float16)


@pytest.mark.parametrize("L_q,L_k", [(16, 200), (100, 2000)])
@pytest.mark.parametrize("kf,vf", [("turbo4", "turbo4"), ("affine8 g32", "turbo3")])
@pytest.mark.parametrize("how", ["plain", "causal", "mask"])
def test_sinks(L_q, L_k, kf, vf, how):
    dtype = mx.bfloat16 if how == "mask" else mx.float16
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, L_q, L_k, 128, kf, vf, dtype, seed=L_q
    )
    sinks = (mx.random.normal((8,)) * 3).astype(dtype)
    kwargs = dict(scale=0.1, sinks=sinks)
    if how == "causal":
        kwargs["causal"] = True
    elif how == "mask":
        kwargs["mask"] = masks(2, 8, L_q, L_k, seed=1)["bool"]
    out = attend(q, k_parts, v_parts, kf, vf, **kwargs)
    check(out, reference(q, k_hat, v_hat, **kwargs), dtype)


def test_sliced_cache():
    # A cache that grows in steps is a slice of a larger buffer.
    q, k_parts, v_parts, _, _ = case(
        2, 8, 2, 64, 1024, 128, "turbo4", "turbo4", mx.float16, seed=9
    )
    sliced = [[a[..., :700, :] for a in p] for p in (k_parts, v_parts)]
    dense = [[mx.contiguous(a) for a in p] for p in sliced]
    a = attend(q, *sliced, "turbo4", "turbo4", scale=0.1, causal=True)
    b = attend(q, *dense, "turbo4", "turbo4", scale=0.1, causal=True)
    assert mx.array_equal(a, b).item()


def extra_memory(B, Hq, Hkv, L_q, L_k, D, seed):
    """The peak memory one causal turbo4 call adds, output included."""
    q, k_parts, v_parts, k_hat, v_hat = case(
        B, Hq, Hkv, L_q, L_k, D, "turbo4", "turbo4", mx.float16, seed=seed
    )
    del k_hat, v_hat
    extra, _ = extra_peak(
        lambda: attend(q, k_parts, v_parts, "turbo4", "turbo4", scale=0.1, causal=True)
    )
    return extra


def test_kernel_ran():
    # The fallback dequantizes all of K and V (here 134 MB in float16); the
    # kernel allocates its output and the chunks' partials only.
    B, Hq, Hkv, L_q, L_k, D = 1, 32, 8, 16, 32768, 128
    extra = extra_memory(B, Hq, Hkv, L_q, L_k, D, seed=21)
    dequantized = 2 * B * Hkv * L_k * D * 2
    assert extra < dequantized // 4, (extra, dequantized)


def cudnn_chunks():
    # Whether calls without a mask array take cuDNN over decoded chunks.
    off = ("MLX_CUDA_USE_CUDNN_SDPA", "MLX_CUDA_QUANTIZED_SDPA_CUDNN")
    return all(os.environ.get(name, "1") != "0" for name in off)


def reference_lse(q, k, scale, causal=False, sinks=None):
    """The log-sum-exp of each row's scaled scores (and sink), in float64."""
    s = scores64(q, k, scale, causal=causal, sinks=sinks)
    m = s.max(-1, keepdims=True)
    return m + np.log(np.exp(s - m).sum(-1, keepdims=True))


# cuDNN over chunks of decoded keys takes calls of 4096 query rows or more
# (here B=2 x 16 heads x 128 queries or more; 16 queries stay with the tiled
# kernel). Its chunks hold 4096 keys or an eighth of the cache rounded up to
# 512, the first what is left, and their outputs are folded by their
# log-sum-exps: 8193 keys are a first chunk of 1 key and two of 4096, 9001
# one of 809 and two of 4096, 12000 one of 3808 and two of 4096; 4000 keys
# are one chunk, or under the causal mask 3872 keys and then the 128 the
# queries see in part. (40000 keys would be one of 4160 and seven of 5120.)
@pytest.mark.parametrize(
    "L_q,L_k,kf,vf,dtype",
    [
        (128, 4000, "turbo4", "turbo4", mx.float16),
        (128, 9001, "turbo4", "turbo4", mx.float16),
        (256, 12000, "turbo4", "turbo3", mx.float16),
        (160, 8193, "affine4 g64", "affine4 g64", mx.bfloat16),
        (16, 40000, "affine8 g32", "turbo4", mx.float16),
    ],
)
@pytest.mark.parametrize("how", ["plain", "causal", "sinks"])
def test_key_chunks(L_q, L_k, kf, vf, dtype, how):
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 16, 4, L_q, L_k, 128, kf, vf, dtype, seed=L_k
    )
    kwargs = dict(scale=0.1)
    if how == "causal":
        kwargs["causal"] = True
    elif how == "sinks":
        kwargs["sinks"] = (mx.random.normal((16,)) * 3).astype(dtype)
    out, lse = attend(q, k_parts, v_parts, kf, vf, return_lse=True, **kwargs)
    plain = attend(q, k_parts, v_parts, kf, vf, **kwargs)
    assert mx.array_equal(out, plain).item()
    check(out, reference(q, k_hat, v_hat, **kwargs), dtype)
    expected = reference_lse(q, k_hat, **kwargs)
    assert lse.shape == expected.shape and lse.dtype == mx.float32
    np.testing.assert_allclose(np.array(lse), expected, atol=2e-2, rtol=0)


def test_growing_cache():
    # A cache that grows as mlx-lm's does: slices of one buffer, attended by
    # the same 128 queries (4096 rows, through cuDNN when it is on). A chunk
    # shorter than 4096 keys and not causal is laid out as a whole one and
    # masked by its length, so one cuDNN graph takes first chunks of 1, 809,
    # 2000 and 3808 keys, and (below 4096 keys, causal) 472 and 1872 before
    # the last 128; each must see only its own.
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 16, 4, 128, 12288, 128, "turbo4", "turbo3", mx.float16, seed=23
    )
    for L_k in (128, 600, 2000, 8193, 9001, 10192, 12000, 12288):
        k_slice = [a[..., :L_k, :] for a in k_parts]
        v_slice = [a[..., :L_k, :] for a in v_parts]
        for causal in (False, True):
            out = attend(
                q, k_slice, v_slice, "turbo4", "turbo3", scale=0.1, causal=causal
            )
            expected = reference(
                q, k_hat[..., :L_k, :], v_hat[..., :L_k, :], 0.1, causal=causal
            )
            check(out, expected, mx.float16, f"{L_k} keys, causal={causal}")


@pytest.mark.skipif(not cudnn_chunks(), reason="cuDNN is off: the tiled kernel runs")
def test_cudnn_chunks_ran():
    # 128 queries (4096 rows) over 64K keys through cuDNN: a scratch of 8192
    # decoded keys and values (an eighth of the cache: 32 MiB here), the
    # folded output (2 MiB) and nothing the size of the cache (256 MiB in
    # float16). The tiled kernel would hold its partials instead (about 17
    # MiB here, for any number of keys).
    B, Hq, Hkv, L_q, L_k, D = 1, 32, 8, 128, 65536, 128
    extra = extra_memory(B, Hq, Hkv, L_q, L_k, D, seed=22)
    scratch = 2 * B * Hkv * (L_k // 8) * D * 2
    assert scratch <= extra < scratch + 8 * 2**20, (extra, scratch)
