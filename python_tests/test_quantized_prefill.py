"""Quantized SDPA with many queries (prefill chunks, speculative verification)
on the CPU: the tiled kernel against float64 attention over the decoded cache
(mx.dequantize), in every format the kernels read, with GQA, batches, causal
chunks at the end of the cache, boolean and additive masks and sinks; and
that the kernel ran, not the fallback that dequantizes the whole cache (its
peak memory stays near the output's size)."""

import itertools

import mlx.core as mx
import numpy as np
import pytest

FORMATS = {
    "turbo3": dict(mode="turbo3"),
    "turbo4": dict(mode="turbo4"),
    "affine4": dict(mode="affine", group_size=64, bits=4),
    "affine6": dict(mode="affine", group_size=64, bits=6),
    "affine8": dict(mode="affine", group_size=32, bits=8),
}
# Key and value formats: each format alone, and the mixed pairs users run.
PAIRS = [(f, f) for f in FORMATS] + [
    ("affine8", "turbo4"),
    ("affine8", "turbo3"),
    ("turbo4", "turbo3"),
    ("turbo4", "affine4"),
    ("affine4", "affine8"),
]
TOL = {mx.float32: 1e-4, mx.float16: 5e-3, mx.bfloat16: 4e-2}
# Stands for a masked score: finite, so that a fully masked row weighs all of
# its keys the same (the mean of the values), as scaled_dot_product_attention
# gives it for boolean masks.
MASKED = -1e30


@pytest.fixture(autouse=True)
def cpu():
    with mx.stream(mx.cpu):
        yield


# The helpers below take the table of formats by name (formats), which the
# CUDA tests (test_cuda_prefill.py) give their own.
def quantize(x, fmt, formats=FORMATS):
    parts = mx.quantize(x, **formats[fmt])
    decoded = mx.dequantize(*parts, **formats[fmt], dtype=mx.float32)
    return parts, decoded


def attend(q, k_parts, v_parts, kf, vf, formats=FORMATS, **kwargs):
    args = dict(formats[kf])
    args.update({f"v_{key}": value for key, value in formats[vf].items()})
    if formats[kf]["mode"] == "affine":
        args["k_biases"] = k_parts[2]
    if formats[vf]["mode"] == "affine":
        args["v_biases"] = v_parts[2]
    return mx.fast.quantized_scaled_dot_product_attention(
        q, k_parts[0], k_parts[1], v_parts[0], v_parts[1], **args, **kwargs
    )


def reference(q, k, v, scale, mask=None, causal=False, sinks=None):
    """Attention in float64 NumPy over decoded keys and values."""
    q, k, v = (np.array(t.astype(mx.float32)).astype(np.float64) for t in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k = np.repeat(k, rep, axis=1)
    v = np.repeat(v, rep, axis=1)
    s = scale * q @ k.swapaxes(-1, -2)
    L_q, L_k = s.shape[-2:]
    if causal:
        # Query i of a chunk at the end of the cache sees keys up to
        # L_k - L_q + i.
        allowed = np.arange(L_q)[:, None] + L_k - L_q >= np.arange(L_k)
        s = np.where(allowed, s, MASKED)
    if mask is not None:
        if mask.dtype == mx.bool_:
            s = np.where(np.array(mask), s, MASKED)
        else:
            s = s + np.array(mask.astype(mx.float32)).astype(np.float64)
    if sinks is not None:
        sk = np.array(sinks.astype(mx.float32)).astype(np.float64)
        sk = np.broadcast_to(sk[None, :, None, None], s.shape[:-1] + (1,))
        s = np.concatenate([sk, s], axis=-1)
    with np.errstate(invalid="ignore"):
        p = np.exp(s - s.max(-1, keepdims=True))
        p = p / p.sum(-1, keepdims=True)
    if sinks is not None:
        p = p[..., 1:]
    return p @ v


def check(out, expected, dtype):
    np.testing.assert_allclose(
        np.array(out.astype(mx.float32)), expected, atol=TOL[dtype], rtol=TOL[dtype]
    )


def case(B, Hq, Hkv, L_q, L_k, D, kf, vf, dtype, seed, formats=FORMATS):
    mx.random.seed(seed)
    q = mx.random.normal((B, Hq, L_q, D)).astype(dtype)
    k = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
    v = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
    k_parts, k_hat = quantize(k, kf, formats)
    v_parts, v_hat = quantize(v, vf, formats)
    mx.eval(q, k_parts, v_parts, k_hat, v_hat)
    return q, k_parts, v_parts, k_hat, v_hat


# Every format pair with every query length, alternating GQA 1/4/8, dtypes
# and causal or not; L_k from just above L_q to 4K.
LENGTHS = [(9, 40), (16, 300), (33, 1000), (100, 777), (512, 4096)]
GRID = [
    (kf, vf, L_q, L_k)
    for (kf, vf), (L_q, L_k) in itertools.product(PAIRS, LENGTHS)
    if L_q < 512 or kf == vf or (kf, vf) == ("affine8", "turbo4")
]


@pytest.mark.parametrize("kf,vf,L_q,L_k", GRID)
def test_formats_and_lengths(kf, vf, L_q, L_k):
    i = GRID.index((kf, vf, L_q, L_k))
    gqa = (1, 4, 8)[i % 3]
    dtype = (mx.float32, mx.float16, mx.bfloat16)[i % 3]
    causal = i % 2 == 0
    # Fewer heads for the longest case keeps the float64 reference small.
    Hkv = 1 if L_q == 512 else 2
    D = 128
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, Hkv * gqa, Hkv, L_q, L_k, D, kf, vf, dtype, seed=i
    )
    out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, causal=causal)
    assert out.shape == q.shape and out.dtype == dtype
    check(out, reference(q, k_hat, v_hat, D**-0.5, causal=causal), dtype)


@pytest.mark.parametrize("D", [64, 96, 128, 256])
@pytest.mark.parametrize("kf,vf", [("turbo4", "turbo4"), ("affine8", "turbo3")])
def test_head_dims(D, kf, vf):
    if D == 96 and "turbo" not in kf + vf:
        pytest.skip("affine group 64 does not divide 96")
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, 37, 333, D, kf, vf, mx.float32, seed=D
    )
    out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, causal=True)
    check(out, reference(q, k_hat, v_hat, D**-0.5, causal=True), mx.float32)


@pytest.mark.parametrize(
    "L_q,L_k", [(9, 9), (16, 16), (100, 100), (33, 64), (100, 4096), (512, 3000)]
)
@pytest.mark.parametrize("fmt", ["turbo4", "affine4"])
def test_causal_chunk_at_the_end(L_q, L_k, fmt):
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, L_q, L_k, 128, fmt, fmt, mx.float32, seed=L_q + L_k
    )
    out = attend(q, k_parts, v_parts, fmt, fmt, scale=0.1, causal=True)
    check(out, reference(q, k_hat, v_hat, 0.1, causal=True), mx.float32)


def test_causal_more_queries_than_keys():
    # The first queries see no key: the mean of the values, as
    # scaled_dot_product_attention gives them.
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, 20, 12, 64, "turbo4", "turbo4", mx.float32, seed=3
    )
    out = attend(q, k_parts, v_parts, "turbo4", "turbo4", scale=0.125, causal=True)
    expected = reference(q, k_hat, v_hat, 0.125, causal=True)
    check(out, expected, mx.float32)
    k, v = (mx.dequantize(*p, mode="turbo4") for p in (k_parts, v_parts))
    sdpa = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask="causal")
    assert mx.allclose(out, sdpa, atol=1e-4).item()


def masks(B, Hq, L_q, L_k, seed):
    """Boolean and additive masks, full and broadcast."""
    rng = np.random.default_rng(seed)
    keep = rng.random((B, Hq, L_q, L_k)) > 0.3
    keep[:, :, :, 0] = True
    return {
        "bool": mx.array(keep),
        "bool broadcast": mx.array(keep[:1, :1]),
        "additive": mx.array(rng.normal(size=(B, Hq, L_q, L_k)).astype(np.float32)),
        "additive broadcast": mx.array(
            np.where(keep[0, 0], 0.0, -np.inf).astype(np.float32)
        ),
    }


@pytest.mark.parametrize("L_q,L_k", [(9, 100), (33, 500), (100, 1000)])
@pytest.mark.parametrize("fmt", ["turbo3", "turbo4", "affine8"])
@pytest.mark.parametrize("gqa", [1, 4, 8])
def test_masks(L_q, L_k, fmt, gqa):
    Hq = 2 * gqa
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, Hq, 2, L_q, L_k, 128, fmt, fmt, mx.float32, seed=L_q * gqa
    )
    for name, mask in masks(2, Hq, L_q, L_k, seed=L_q).items():
        out = attend(q, k_parts, v_parts, fmt, fmt, scale=0.1, mask=mask)
        check(out, reference(q, k_hat, v_hat, 0.1, mask=mask), mx.float32)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_masks_half(dtype):
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, 40, 600, 128, "turbo4", "affine4", dtype, seed=11
    )
    for name, mask in masks(2, 8, 40, 600, seed=2).items():
        if mask.dtype != mx.bool_:
            mask = mask.astype(dtype)
        out = attend(q, k_parts, v_parts, "turbo4", "affine4", scale=0.1, mask=mask)
        check(out, reference(q, k_hat, v_hat, 0.1, mask=mask), dtype)


def test_fully_masked_rows():
    # Rows with every key masked: the mean of the values for a boolean mask,
    # NaN for an additive one, 0 with sinks; as scaled_dot_product_attention.
    q, k_parts, v_parts, k_hat, v_hat = case(
        1, 4, 2, 12, 200, 64, "turbo4", "turbo4", mx.float32, seed=5
    )
    keep = np.ones((1, 1, 12, 200), dtype=bool)
    keep[..., 3, :] = False
    keep[..., 7, 64:] = False
    keep = mx.array(keep)
    k, v = (mx.dequantize(*p, mode="turbo4") for p in (k_parts, v_parts))
    for mask, sinks in [
        (keep, None),
        (mx.where(keep, 0.0, -float("inf")), None),
        (keep, mx.array([0.5, -1.0, 0.0, 2.0])),
    ]:
        kwargs = dict(scale=0.125, mask=mask, sinks=sinks)
        out = attend(q, k_parts, v_parts, "turbo4", "turbo4", **kwargs)
        sdpa = mx.fast.scaled_dot_product_attention(q, k, v, **kwargs)
        assert mx.array_equal(mx.isnan(out), mx.isnan(sdpa)).item()
        assert mx.allclose(out, sdpa, atol=1e-4, equal_nan=True).item()


@pytest.mark.parametrize("L_q,L_k", [(16, 200), (100, 2000)])
@pytest.mark.parametrize("kf,vf", [("turbo4", "turbo4"), ("affine8", "turbo3")])
@pytest.mark.parametrize("how", ["plain", "causal", "mask"])
def test_sinks(L_q, L_k, kf, vf, how):
    q, k_parts, v_parts, k_hat, v_hat = case(
        2, 8, 2, L_q, L_k, 128, kf, vf, mx.float32, seed=L_q
    )
    sinks = mx.random.normal((8,)) * 3
    kwargs = dict(scale=0.1, sinks=sinks)
    if how == "causal":
        kwargs["causal"] = True
    elif how == "mask":
        kwargs["mask"] = masks(2, 8, L_q, L_k, seed=1)["bool"]
    out = attend(q, k_parts, v_parts, kf, vf, **kwargs)
    check(out, reference(q, k_hat, v_hat, **kwargs), mx.float32)


def test_sliced_cache():
    # A cache that grows in steps is a slice of a larger buffer.
    q, k_parts, v_parts, _, _ = case(
        2, 8, 2, 64, 1024, 128, "turbo4", "affine4", mx.float32, seed=9
    )
    sliced = [[a[..., :700, :] for a in p] for p in (k_parts, v_parts)]
    dense = [[mx.contiguous(a) for a in p] for p in sliced]
    a = attend(q, *sliced, "turbo4", "affine4", scale=0.1, causal=True)
    b = attend(q, *dense, "turbo4", "affine4", scale=0.1, causal=True)
    assert mx.array_equal(a, b).item()


def extra_peak(f):
    """Bytes allocated by f() beyond what was live before it (inputs)."""
    mx.synchronize()
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    out = f()
    mx.eval(out)
    return mx.get_peak_memory() - before, out


@pytest.mark.parametrize("fmt", ["turbo4", "affine4"])
@pytest.mark.parametrize("causal", [False, True])
def test_fused_kernel_ran(fmt, causal):
    # The fallback dequantizes all of K and V and materializes a score
    # matrix (B * Hq * L_q * L_k floats); the kernel allocates nothing but
    # its output. Telling them apart by peak memory also shows that the
    # kernel keeps its promise.
    B, Hq, Hkv, L_q, L_k, D = 1, 8, 2, 512, 4096, 128
    # float32: the fallback's quantized_matmul is slow in float16 on the CPU.
    q, k_parts, v_parts, k_hat, v_hat = case(
        B, Hq, Hkv, L_q, L_k, D, fmt, fmt, mx.float32, seed=21
    )
    del k_hat, v_hat
    fused, out = extra_peak(
        lambda: attend(q, k_parts, v_parts, fmt, fmt, scale=0.1, causal=causal)
    )
    kv_half = 2 * B * Hkv * L_k * D * 2
    assert fused <= out.nbytes + kv_half // 16, (fused, out.nbytes)

    # The fallback (what gradients take) for comparison.
    def fallback():
        (o,), _ = mx.vjp(
            lambda q: attend(q, k_parts, v_parts, fmt, fmt, scale=0.1, causal=causal),
            [q],
            [mx.zeros_like(q)],
        )
        return o

    slow, expected = extra_peak(fallback)
    assert slow > 8 * fused
    assert mx.allclose(out, expected, atol=1e-4, rtol=1e-4).item()
