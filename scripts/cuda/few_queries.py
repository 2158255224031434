"""Times quantized SDPA for a few query lengths at the end of a turbo4 cache
(B=1, 32 query / 8 KV heads, D=128, causal) as MLX runs it; run it once with
MLX_CUDA_QUANTIZED_SDPA_CUDNN=0 (the tiled kernel) and once without (cuDNN
over decoded chunks) to compare the two paths. The cuDNN run also times MLX's float16 SDPA over
the unquantized cache (cuDNN's, unless MLX_CUDA_USE_CUDNN_SDPA=0) the same
way: 10 calls issued before one mx.eval."""

import os
import statistics
import time

import mlx.core as mx

path = "tiled" if os.environ.get("MLX_CUDA_QUANTIZED_SDPA_CUDNN") == "0" else "cudnn"


def per_call(f):
    """Median seconds per call of 10 calls issued before one mx.eval."""
    mx.eval(f())
    times = []
    for _ in range(7):
        mx.synchronize()
        t = time.perf_counter()
        mx.eval([f() for _ in range(10)])
        times.append((time.perf_counter() - t) / 10)
    return statistics.median(times)


for L in (4096, 32768):
    k = mx.random.normal((1, 8, L, 128)).astype(mx.float16)
    v = mx.random.normal((1, 8, L, 128)).astype(mx.float16)
    kp = mx.quantize(k, mode="turbo4", stream=mx.cpu)
    vp = mx.quantize(v, mode="turbo4", stream=mx.cpu)
    mx.eval(k, v, kp, vp)
    for L_q in (16, 64, 128, 512):
        q = mx.random.normal((1, 32, L_q, 128)).astype(mx.float16)
        seconds = per_call(
            lambda: mx.fast.quantized_scaled_dot_product_attention(
                q, kp[0], kp[1], vp[0], vp[1], scale=0.088, causal=True, mode="turbo4"
            )
        )
        print(f"{path} L={L} L_q={L_q}: {seconds * 1e6:.0f} us")
        if path == "cudnn":
            seconds = per_call(
                lambda: mx.fast.scaled_dot_product_attention(
                    q, k, v, scale=0.088, mask="causal"
                )
            )
            print(f"float16 sdpa L={L} L_q={L_q}: {seconds * 1e6:.0f} us")
