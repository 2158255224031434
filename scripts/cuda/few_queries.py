"""Times quantized SDPA for a few query lengths at the end of a turbo4 cache
(B=1, 32 query / 8 KV heads, D=128, causal) as MLX runs it; run it once with
MLX_CUDA_QUANTIZED_SDPA_CUDNN=0 (the tiled kernel) and once without (cuDNN
over decoded chunks) to compare the two paths."""

import os
import statistics
import time

import mlx.core as mx

path = "tiled" if os.environ.get("MLX_CUDA_QUANTIZED_SDPA_CUDNN") == "0" else "cudnn"
for L in (4096, 32768):
    k = mx.random.normal((1, 8, L, 128)).astype(mx.float16)
    v = mx.random.normal((1, 8, L, 128)).astype(mx.float16)
    kp = mx.quantize(k, mode="turbo4", stream=mx.cpu)
    vp = mx.quantize(v, mode="turbo4", stream=mx.cpu)
    mx.eval(kp, vp)
    for L_q in (16, 64, 128, 512):
        q = mx.random.normal((1, 32, L_q, 128)).astype(mx.float16)
        f = lambda: mx.fast.quantized_scaled_dot_product_attention(
            q, kp[0], kp[1], vp[0], vp[1], scale=0.088, causal=True, mode="turbo4"
        )
        mx.eval(f())
        times = []
        for _ in range(7):
            mx.synchronize()
            t = time.perf_counter()
            mx.eval([f() for _ in range(10)])
            times.append((time.perf_counter() - t) / 10)
        print(f"{path} L={L} L_q={L_q}: {statistics.median(times) * 1e6:.0f} us")
