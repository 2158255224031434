"""Quantized SDPA on a CUDA GPU: the fused kernel and the fallback against
float64 attention over the dequantized cache. Skipped without a CUDA GPU
(CI has none); the device runs and benchmarks are in results/speed_cuda.md."""

from itertools import product

import mlx.core as mx
import numpy as np
import pytest

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


def attention64(q, k, v, scale, causal=False):
    q, k, v = (np.array(t.astype(mx.float32), dtype=np.float64) for t in (q, k, v))
    reps = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, reps, axis=1), np.repeat(v, reps, axis=1)
    s = scale * q @ k.swapaxes(-1, -2)
    if causal:
        L_q, L_k = s.shape[-2:]
        s = np.where(np.arange(L_q)[:, None] + L_k - L_q >= np.arange(L_k), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


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
        kwargs = dict(scale=D**-0.5, causal=causal, **kf)
        kwargs.update({f"v_{key}": value for key, value in vf.items()})
        if kf["mode"] == "affine":
            kwargs["k_biases"] = k_parts[2]
        if vf["mode"] == "affine":
            kwargs["v_biases"] = v_parts[2]
        out = mx.fast.quantized_scaled_dot_product_attention(
            q, k_parts[0], k_parts[1], v_parts[0], v_parts[1], **kwargs
        )
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
