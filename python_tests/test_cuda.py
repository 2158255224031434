"""Quantized SDPA on a CUDA GPU: the fused kernels and the fallback against
float64 attention over the dequantized cache. Skipped without a CUDA GPU
(CI has none); the device runs and benchmarks are in results/speed_cuda.md."""

from itertools import product

import mlx.core as mx
import numpy as np
import pytest
from test_quantized_prefill import extra_peak

pytestmark = pytest.mark.skipif(not mx.cuda.is_available(), reason="needs a CUDA GPU")

FORMATS = {
    "turbo3": dict(mode="turbo3"),
    "turbo4": dict(mode="turbo4"),
    "affine4 g64": dict(mode="affine", group_size=64, bits=4),
    "affine8 g32": dict(mode="affine", group_size=32, bits=8),
}
PAIRS = [(name, name) for name in FORMATS] + [
    ("affine8 g32", "turbo4"),
    ("affine8 g32", "turbo3"),
    ("turbo4", "turbo3"),
]


def pair_or_dtype_id(x):
    # Test ids for parameters (pair, dtype): "turbo4/turbo3", "float16".
    return f"{x[0]}/{x[1]}" if isinstance(x, tuple) else str(x).split(".")[-1]


def scores64(q, k, scale, causal=False, mask=None, sinks=None):
    """The scaled and masked scores of the queries q against the keys k in
    float64; with sinks, one more column: a key of score `sinks[head]` whose
    value is zero."""
    q, k = (np.array(t.astype(mx.float32), dtype=np.float64) for t in (q, k))
    k = np.repeat(k, q.shape[1] // k.shape[1], axis=1)
    s = scale * q @ k.swapaxes(-1, -2)
    if causal:
        L_q, L_k = s.shape[-2:]
        s = np.where(np.arange(L_q)[:, None] + L_k - L_q >= np.arange(L_k), s, -np.inf)
    # Masks broadcast against the scores.
    if mask is not None and mask.dtype == mx.bool_:
        s = np.where(np.array(mask), s, -np.inf)
    elif mask is not None:
        s = s + np.array(mask.astype(mx.float32), dtype=np.float64)
    if sinks is not None:
        sink = np.array(sinks.astype(mx.float32), dtype=np.float64)[:, None, None]
        s = np.concatenate([s, np.broadcast_to(sink, s.shape[:-1] + (1,))], -1)
    return s


def attention64(q, k, v, scale, causal=False, mask=None, sinks=None):
    s = scores64(q, k, scale, causal, mask, sinks)
    v = np.array(v.astype(mx.float32), dtype=np.float64)
    v = np.repeat(v, q.shape[1] // v.shape[1], axis=1)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True)
    if sinks is not None:
        p = p[..., :-1]
    return p @ v


def attend(q, k_parts, v_parts, kf, vf, **kwargs):
    # Quantized SDPA over the parts that mx.quantize gave in formats kf, vf.
    kwargs.update(kf)
    kwargs.update({f"v_{key}": value for key, value in vf.items()})
    if kf["mode"] == "affine":
        kwargs["k_biases"] = k_parts[2]
    if vf["mode"] == "affine":
        kwargs["v_biases"] = v_parts[2]
    return mx.fast.quantized_scaled_dot_product_attention(
        q, k_parts[0], k_parts[1], v_parts[0], v_parts[1], **kwargs
    )


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}/{p[1]}")
@pytest.mark.parametrize("L_q", (1, 33))
def test_sliced_and_broadcast_caches_are_read_in_place(pair, L_q):
    # A KV cache that grows in steps (mlx-lm's) hands over a slice of a
    # larger buffer, and a batch can share one cache through a broadcast:
    # the kernels read both through their strides, with the same output as
    # packed copies and without copying them on every call. A cache whose
    # rows do not start at a whole number of rows is copied, with the same
    # output.
    mx.random.seed(4)
    kf, vf = FORMATS[pair[0]], FORMATS[pair[1]]
    B, Hq, Hkv, alloc, L_k, D = 2, 8, 2, 4096, 3000, 128
    k = mx.random.normal((B, Hkv, alloc, D)).astype(mx.float16)
    v = mx.random.normal((B, Hkv, alloc, D)).astype(mx.float16)
    k_parts, v_parts = mx.quantize(k, **kf), mx.quantize(v, **vf)
    q = mx.random.normal((B, Hq, L_q, D)).astype(mx.float16)
    mx.eval(k_parts, v_parts, q)

    def shifted(x):
        # Row-contiguous, but 3 elements into its buffer: not a whole number
        # of rows, which the kernels' vector loads need, so it is copied.
        pad = mx.zeros((3,), x.dtype)
        return mx.concatenate([pad, x.reshape(-1)])[3:].reshape(x.shape)

    layouts = {
        "sliced": lambda x: x[..., :L_k, :],
        "broadcast": lambda x: mx.repeat(x[:1, :, :L_k], B, axis=0),
        "shifted": lambda x: shifted(x[..., :L_k, :]),
    }
    caches = {
        name: [[f(x) for x in p] for p in (k_parts, v_parts)]
        for name, f in layouts.items()
    }
    for name, (ks, vs) in caches.items():
        packed = [[mx.contiguous(x) for x in p] for p in (ks, vs)]
        mx.eval(ks, vs, packed)
        # Memory held at the peak besides the output.
        held, out = extra_peak(lambda: attend(q, ks, vs, kf, vf, scale=D**-0.5))
        held_ref, ref = extra_peak(lambda: attend(q, *packed, kf, vf, scale=D**-0.5))
        held, held_ref = held - out.nbytes, held_ref - ref.nbytes
        assert mx.array_equal(out, ref).item(), name
        if name == "shifted":
            continue
        # A copy would hold the call's keys and values besides (1.1-3.3
        # MiB); the allocator rounds buffers to 16 KiB pages.
        copy = sum(x.nbytes for x in (*packed[0], *packed[1]))
        assert copy > 20 * 16384
        assert held <= held_ref + 2 * 16384, f"{name}: {held} {held_ref} {copy}"


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}/{p[1]}")
def test_fused_and_fallback_match_float64(pair):
    mx.random.seed(0)
    kf, vf = FORMATS[pair[0]], FORMATS[pair[1]]
    for D, B, dtype, L_q, causal in product(
        (64, 128, 256),
        (1, 2),
        (mx.float16, mx.bfloat16, mx.float32),
        (1, 8, 9),
        (False, True),
    ):
        k = mx.random.normal((B, 2, 300, D)).astype(dtype)
        v = mx.random.normal((B, 2, 300, D)).astype(dtype)
        q = mx.random.normal((B, 8, L_q, D)).astype(dtype)
        k_parts, v_parts = mx.quantize(k, **kf), mx.quantize(v, **vf)
        out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, causal=causal)
        k_hat = mx.dequantize(*k_parts, **kf, dtype=mx.float32)
        v_hat = mx.dequantize(*v_parts, **vf, dtype=mx.float32)
        expected = attention64(q, k_hat, v_hat, D**-0.5, causal)
        # The fallback's attention uses TF32 matmuls for float32.
        tol = {mx.float32: 1e-3, mx.float16: 5e-3, mx.bfloat16: 4e-2}[dtype]
        np.testing.assert_allclose(
            np.array(out.astype(mx.float32)),
            expected,
            atol=tol,
            rtol=tol,
            err_msg=f"D={D} B={B} {dtype} L_q={L_q} causal={causal}",
        )


@pytest.mark.parametrize(
    "pair",
    [("turbo4", "turbo4"), ("turbo3", "turbo3"), ("affine8 g32", "turbo4")],
    ids=lambda p: f"{p[0]}/{p[1]}",
)
def test_masks_and_sinks_match_float64(pair):
    # All three run the tensor-core kernel (16-bit queries), which reads
    # masks through their strides.
    mx.random.seed(1)
    kf, vf = FORMATS[pair[0]], FORMATS[pair[1]]
    B, Hq, Hkv, L_k = 2, 8, 2, 333
    for D, dtype, L_q in product((64, 128), (mx.float16, mx.bfloat16), (1, 5)):
        k = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
        v = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
        q = mx.random.normal((B, Hq, L_q, D)).astype(dtype)
        k_parts, v_parts = mx.quantize(k, **kf), mx.quantize(v, **vf)
        k_hat = mx.dequantize(*k_parts, **kf, dtype=mx.float32)
        v_hat = mx.dequantize(*v_parts, **vf, dtype=mx.float32)
        bool_mask = mx.random.uniform(shape=(B, Hq, L_q, L_k)) > 0.3
        bool_mask[..., 0] = True
        additive = mx.random.normal((L_q, L_k)).astype(dtype)
        # Sinks large enough to take a good share of the weight.
        sinks = (4 + mx.random.normal((Hq,))).astype(dtype)
        options = {
            "bool": dict(mask=bool_mask),
            "bool per head": dict(mask=bool_mask[:, :, :1]),
            "additive": dict(mask=additive),
            "causal+sinks": dict(causal=True, sinks=sinks),
            "additive+sinks": dict(mask=additive, sinks=sinks),
        }
        for name, extra in options.items():
            out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, **extra)
            expected = attention64(
                q,
                k_hat,
                v_hat,
                D**-0.5,
                extra.get("causal", False),
                extra.get("mask"),
                extra.get("sinks"),
            )
            # Relative to the outputs' norm: averages over many keys are
            # small, so an absolute tolerance would hide lost keys.
            error = np.linalg.norm(np.array(out.astype(mx.float32)) - expected)
            error /= np.linalg.norm(expected)
            tol = {mx.float16: 5e-3, mx.bfloat16: 2e-2}[dtype]
            assert error < tol, f"D={D} {dtype} L_q={L_q} {name}: {error:.2e}"


@pytest.mark.parametrize(
    "pair, dtype",
    [
        (("turbo4", "turbo4"), mx.float16),  # tensor cores
        (("turbo4", "turbo4"), mx.bfloat16),  # tensor cores
        (("turbo4", "turbo4"), mx.float32),  # CUDA cores
        (("turbo3", "turbo3"), mx.float16),  # tensor cores
        (("affine4 g64", "affine4 g64"), mx.bfloat16),  # tensor cores
        (("affine8 g32", "turbo4"), mx.float16),  # tensor cores
        (("affine8 g32", "turbo4"), mx.float32),  # CUDA cores
    ],
    ids=pair_or_dtype_id,
)
@pytest.mark.parametrize("L_k", [40, 2000])
def test_fully_masked_rows_match_the_cpu(pair, dtype, L_k):
    # A query row whose keys are all masked out gets what the CPU kernel
    # (and scaled_dot_product_attention) gives it: the mean of its KV head's
    # values with a boolean mask, NaN with an additive one, 0 with sinks.
    # 2000 keys are split across thread blocks (chunks of 256 keys or more),
    # and a row that sees only the last keys has whole chunks masked out.
    mx.random.seed(2)
    kf, vf = FORMATS[pair[0]], FORMATS[pair[1]]
    B, Hq, Hkv, L_q = 2, 8, 2, 3
    for D in (64, 128, 256):
        k = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
        v = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
        q = mx.random.normal((B, Hq, L_q, D)).astype(dtype)
        k_parts, v_parts = mx.quantize(k, **kf), mx.quantize(v, **vf)
        keep = mx.random.uniform(shape=(B, Hq, L_q, L_k)) > 0.3
        keep[0, 1, 0] = False
        keep[1, 2:4] = False  # every row of two heads of one KV head
        keep[1, 6, 2] = False
        keep[0, 5, 1] = mx.arange(L_k) >= L_k - 20  # a sliding window
        keep_per_head = keep[:, :, :1]
        keep_per_head[0, 7] = False
        additive = mx.where(keep, mx.random.normal(keep.shape), -float("inf"))
        additive = additive.astype(dtype)
        sinks = mx.random.normal((Hq,)).astype(dtype)
        options = {
            "bool": dict(mask=keep),
            "bool per head": dict(mask=keep_per_head),
            "additive": dict(mask=additive),
            "bool+sinks": dict(mask=keep, sinks=sinks),
            "additive+sinks": dict(mask=additive, sinks=sinks),
        }
        for name, extra in options.items():
            msg = f"D={D} {name}"
            args = (q, k_parts, v_parts, kf, vf)
            out = attend(*args, scale=D**-0.5, stream=mx.gpu, **extra)
            ref = attend(*args, scale=D**-0.5, stream=mx.cpu, **extra)
            out = np.array(out.astype(mx.float32))
            ref = np.array(ref.astype(mx.float32))
            mask = extra["mask"]
            if mask.dtype != mx.bool_:
                mask = mask > -float("inf")
            full = ~np.array(mx.broadcast_to(mask, (B, Hq, L_q, L_k)).any(-1))
            assert full.sum() >= 8, msg
            nan = np.isnan(ref).any(-1)
            expected_nan = full if name == "additive" else np.zeros_like(full)
            assert (nan == expected_nan).all(), msg
            assert (np.isnan(out) == np.isnan(ref)).all(), msg
            # The fully masked rows: the same sums of the decoded values in
            # float32, or zeros.
            tol = {mx.float32: 1e-4, mx.float16: 5e-3, mx.bfloat16: 2e-2}[dtype]
            np.testing.assert_allclose(
                out[full], ref[full], rtol=tol, atol=1e-6, err_msg=msg
            )
            if "sinks" in name:
                assert (out[full] == 0).all(), msg
            # The others, relative to their norm.
            error = np.linalg.norm(out[~full] - ref[~full])
            error /= np.linalg.norm(ref[~full])
            assert error < tol, f"{msg}: {error:.2e}"


@pytest.mark.parametrize(
    "pair, dtype",
    [
        (("turbo4", "turbo4"), mx.float16),  # tensor cores
        (("turbo3", "turbo3"), mx.bfloat16),  # tensor cores
        (("turbo4", "turbo4"), mx.float32),  # CUDA cores
        (("affine4 g64", "affine4 g64"), mx.float16),  # tensor cores
        (("affine8 g32", "turbo4"), mx.float16),  # tensor cores
        (("affine8 g32", "affine8 g32"), mx.float32),  # CUDA cores
    ],
    ids=pair_or_dtype_id,
)
def test_log_sum_exp_from_the_kernels(pair, dtype):
    # return_lse: the kernels' second pass writes each row's log-sum-exp
    # (sinks included, -inf for a row that sees no key) beside the same
    # output, without the fallback's dequantized copy of K and V. 40 queries
    # take the tiled kernel, fewer the decoding ones.
    mx.random.seed(3)
    kf, vf = FORMATS[pair[0]], FORMATS[pair[1]]
    B, Hq, Hkv, L_k, D = 2, 8, 2, 3000, 128
    k = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
    v = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
    k_parts, v_parts = mx.quantize(k, **kf), mx.quantize(v, **vf)
    k_hat = mx.dequantize(*k_parts, **kf, dtype=mx.float32)
    sinks = mx.random.normal((Hq,)).astype(dtype)
    mx.eval(k_parts, v_parts, sinks)
    for L_q in (1, 5) if dtype == mx.float32 else (1, 5, 40):
        q = mx.random.normal((B, Hq, L_q, D)).astype(dtype)
        keep = mx.random.uniform(shape=(B, Hq, L_q, L_k)) > 0.5
        keep[0, 3, 0] = False  # a row that sees no key
        options = {
            "none": {},
            "causal": dict(causal=True),
            "bool": dict(mask=keep),
            "bool+sinks": dict(mask=keep, sinks=sinks),
        }
        for name, extra in options.items():
            msg = f"L_q={L_q} {name}"
            args = (q, k_parts, v_parts, kf, vf)
            mx.eval(q, keep)

            def held(**kwargs):
                # Memory held at the peak besides the outputs.
                mx.synchronize()
                mx.reset_peak_memory()
                before = mx.get_active_memory()
                outs = attend(*args, scale=D**-0.5, **extra, **kwargs)
                mx.eval(outs)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                extra_bytes = mx.get_peak_memory() - before
                return outs, extra_bytes - sum(o.nbytes for o in outs)

            (out, lse), held_lse = held(return_lse=True)
            (plain,), held_plain = held()
            # The same kernels: the fallback would hold the dequantized K
            # and V besides (megabytes). MLX's CUDA allocator rounds
            # buffers to 16 KiB pages, so the lse's buffer can take one.
            page = 16384
            assert held_lse <= held_plain + 2 * page, f"{msg}: {held_lse} {held_plain}"
            assert mx.array_equal(out, plain, equal_nan=True).item(), msg
            assert lse.shape == (B, Hq, L_q, 1) and lse.dtype == mx.float32

            s = scores64(
                q,
                k_hat,
                D**-0.5,
                extra.get("causal", False),
                extra.get("mask"),
                extra.get("sinks"),
            )
            with np.errstate(divide="ignore"):
                m = s.max(-1, keepdims=True)
                finite = np.where(np.isfinite(m), m, 0)
                expected = finite + np.log(np.exp(s - finite).sum(-1, keepdims=True))
            lse = np.array(lse)
            if "mask" in extra and "sinks" not in extra:
                assert np.isneginf(lse[0, 3, 0]), msg
            assert (np.isneginf(lse) == np.isneginf(expected)).all(), msg
            tol = 1e-4 if dtype == mx.float32 else 2e-2
            np.testing.assert_allclose(lse, expected, atol=tol, rtol=tol, err_msg=msg)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda p: f"{p[0]}/{p[1]}")
@pytest.mark.parametrize("dtype", [mx.float16, mx.float32])
def test_a_batch_of_sequences_of_their_own_lengths(pair, dtype):
    # A server's decode batch: 8 sequences, each with its own length, left
    # padded to the longest and masked per sequence, as mlx-lm's batch cache
    # does; 4 query heads per KV head.
    mx.random.seed(4)
    kf, vf = FORMATS[pair[0]], FORMATS[pair[1]]
    B, Hq, Hkv, L_k, D = 8, 32, 8, 1500, 128
    lengths = [1500, 1, 17, 256, 257, 700, 1023, 1499]
    k = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
    v = mx.random.normal((B, Hkv, L_k, D)).astype(dtype)
    k_parts, v_parts = mx.quantize(k, **kf), mx.quantize(v, **vf)
    k_hat = mx.dequantize(*k_parts, **kf, dtype=mx.float32)
    v_hat = mx.dequantize(*v_parts, **vf, dtype=mx.float32)
    mask = mx.arange(L_k)[None] >= L_k - mx.array(lengths)[:, None]
    mask = mask[:, None, None, :]
    for L_q in (1, 4):
        q = mx.random.normal((B, Hq, L_q, D)).astype(dtype)
        out = attend(q, k_parts, v_parts, kf, vf, scale=D**-0.5, mask=mask)
        expected = attention64(q, k_hat, v_hat, D**-0.5, mask=mask)
        # Relative to each sequence's outputs.
        diff = np.array(out.astype(mx.float32)) - expected
        error = np.linalg.norm(diff.reshape(B, -1), axis=-1)
        error /= np.linalg.norm(expected.reshape(B, -1), axis=-1)
        tol = {mx.float32: 1e-3, mx.float16: 5e-3}[dtype]
        assert error.max() < tol, f"L_q={L_q}: {error.max():.2e}"


def test_an_empty_batch_launches_nothing():
    # The kernels' grid divides by the number of rows; the op only answers
    # empty caches and no queries before making the primitive.
    w = mx.zeros((0, 2, 64, 16), mx.uint32)  # turbo4 codes of 128 dims
    scales = mx.zeros((0, 2, 64, 1), mx.float16)
    q = mx.zeros((0, 8, 1, 128), mx.float16)
    out = mx.fast.quantized_scaled_dot_product_attention(
        q, w, scales, w, scales, mode="turbo4", scale=1.0, stream=mx.gpu
    )
    mx.eval(out)
    assert out.shape == (0, 8, 1, 128)


def quantize_both(x, mode):
    """mx.quantize of x on the GPU and on the CPU (the CPU kernel)."""
    gpu = mx.quantize(x, mode=mode, stream=mx.gpu)
    cpu = mx.quantize(x, mode=mode, stream=mx.cpu)
    mx.eval(gpu, cpu)
    return gpu, cpu


def codes(packed, bits):
    words = np.array(packed).reshape(-1, packed.shape[-1]).astype(np.uint64)
    stream = np.unpackbits(words.view(np.uint8), axis=-1, bitorder="little")
    d = stream.shape[-1] // bits
    return (stream.reshape(-1, d, bits) << np.arange(bits)).sum(-1)


@pytest.mark.parametrize(
    "mode, dtype, dim, rows",
    [
        (mode, dtype, dim, rows)
        for mode in ("turbo3", "turbo4")
        for dtype in (mx.float32, mx.float16, mx.bfloat16)
        for dim, rows in (
            (32, 9),
            (64, 7),
            (96, 5),
            (128, 1001),
            (192, 17),
            (256, 33),
            (512, 3),  # no register kernel: one warp per vector
        )
    ],
)
def test_turbo_quantize_kernels_match_the_cpu(mode, dtype, dim, rows):
    bits = int(mode[-1])
    x = mx.random.normal((rows, dim), key=mx.random.key(dim + rows)).astype(dtype)
    x[0] = 0  # a zero vector: scale 0, no NaN
    x[1] = x[1] * 3000  # large float16 values: the norm is taken in float32
    x[2, :4] = 0.0  # zero coordinates take the code below 0, as on the CPU
    x[2, 4:8] = -0.0
    (gq, gs), (cq, cs) = quantize_both(x, mode)
    assert gq.dtype == mx.uint32 and gs.dtype == dtype and gs.shape == (rows, 1)
    # The codes agree except where a coordinate lies within rounding of a
    # boundary (the GPU sums the norm in another order).
    differ = (codes(gq, bits) != codes(cq, bits)).mean()
    assert differ < 1e-3, differ
    assert (codes(gq, bits)[2, :8] == codes(cq, bits)[2, :8]).all()
    assert mx.allclose(gs, cs, rtol=2e-3, atol=0).item()
    assert gs[0].item() == 0 and not mx.isnan(gs).any().item()
    # Dequantizing on the GPU gives the CPU kernel's values, in the dtype.
    g = mx.dequantize(cq, cs, mode=mode, stream=mx.gpu)
    c = mx.dequantize(cq, cs, mode=mode, stream=mx.cpu)
    assert g.dtype == dtype
    assert mx.array_equal(g, c).item()


def test_turbo_quantize_non_contiguous_input():
    x = mx.random.normal((64, 8, 128), key=mx.random.key(3)).astype(mx.float16)
    xt = x.transpose(1, 0, 2)  # what a (B, L, H, D) cache becomes
    (gq, gs), (cq, cs) = quantize_both(xt, "turbo4")
    assert (codes(gq, 4) != codes(cq, 4)).mean() < 1e-3
    assert mx.allclose(gs, cs, rtol=2e-3).item()


@pytest.mark.parametrize("length", [32768, 131072])
def test_turbo_quantize_a_long_cache(length):
    # The composed quantize failed to launch at 32K x 8 x 128 (float16).
    x = mx.random.normal((1, 8, length, 128), key=mx.random.key(0)).astype(mx.float16)
    q, s = mx.quantize(x, mode="turbo4", stream=mx.gpu)
    y = mx.dequantize(q, s, mode="turbo4", stream=mx.gpu)
    err = ((y.astype(mx.float32) - x) ** 2).sum(-1) / (x.astype(mx.float32) ** 2).sum(
        -1
    )
    assert err.mean().item() < 0.0105  # turbo4's MSE on rotated unit vectors
