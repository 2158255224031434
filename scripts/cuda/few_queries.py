"""Times quantized SDPA for a few query lengths at the end of a turbo4 cache
(B=1, 32 query / 8 KV heads, D=128, causal) as MLX runs it; run it once with
MLX_CUDA_QUANTIZED_SDPA_CUDNN=0 (the tiled kernel) and once without (cuDNN
over decoded chunks) to compare the two paths. The cuDNN run also times
MLX's float16 SDPA over the unquantized cache (cuDNN's, unless
MLX_CUDA_USE_CUDNN_SDPA=0) the same way: 10 calls issued before one
mx.eval. Then the first and second call at each length of a cache that
grows 512 keys at a time: what a new length costs (cuDNN builds a graph for
each new shape)."""

import os
import sys
import time
from pathlib import Path

import mlx.core as mx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_speed_cuda import seconds_per_call  # noqa: E402

path = "tiled" if os.environ.get("MLX_CUDA_QUANTIZED_SDPA_CUDNN") == "0" else "cudnn"


for L in (4096, 32768):
    k = mx.random.normal((1, 8, L, 128)).astype(mx.float16)
    v = mx.random.normal((1, 8, L, 128)).astype(mx.float16)
    kp = mx.quantize(k, mode="turbo4", stream=mx.cpu)
    vp = mx.quantize(v, mode="turbo4", stream=mx.cpu)
    mx.eval(k, v, kp, vp)
    for L_q in (16, 64, 128, 512):
        q = mx.random.normal((1, 32, L_q, 128)).astype(mx.float16)
        seconds = seconds_per_call(
            lambda: mx.fast.quantized_scaled_dot_product_attention(
                q, kp[0], kp[1], vp[0], vp[1], scale=0.088, causal=True, mode="turbo4"
            ),
            calls=10,
        )
        print(f"{path} L={L} L_q={L_q}: {seconds * 1e6:.0f} us")
        if path == "cudnn":
            seconds = seconds_per_call(
                lambda: mx.fast.scaled_dot_product_attention(
                    q, k, v, scale=0.088, mask="causal"
                ),
                calls=10,
            )
            print(f"float16 sdpa L={L} L_q={L_q}: {seconds * 1e6:.0f} us")

# A cache that grows a prompt chunk at a time: the first call at each length
# (512 queries at the end of L keys, sliced from one buffer as mlx-lm's cache
# does) builds what it needs, cuDNN's graphs for new shapes included; the
# second is timed alone too, for the difference.
L_max, L_q = 16384 + 8 * 512, 512
k = mx.random.normal((1, 8, L_max, 128)).astype(mx.float16)
v = mx.random.normal((1, 8, L_max, 128)).astype(mx.float16)
kp = mx.quantize(k, mode="turbo4", stream=mx.cpu)
vp = mx.quantize(v, mode="turbo4", stream=mx.cpu)
q = mx.random.normal((1, 32, L_q, 128)).astype(mx.float16)
mx.eval(k, v, kp, vp, q)


def alone(f):
    mx.synchronize()
    t = time.perf_counter()
    mx.eval(f())
    return time.perf_counter() - t


for L in range(16384, L_max + 1, 512):
    ks, vs = k[:, :, :L], v[:, :, :L]
    kq = [a[:, :, :L] for a in kp]
    vq = [a[:, :, :L] for a in vp]
    rows = {
        path: lambda: mx.fast.quantized_scaled_dot_product_attention(
            q, kq[0], kq[1], vq[0], vq[1], scale=0.088, causal=True, mode="turbo4"
        )
    }
    if path == "cudnn":
        rows["float16 sdpa"] = lambda: mx.fast.scaled_dot_product_attention(
            q, ks, vs, scale=0.088, mask="causal"
        )
    for name, f in rows.items():
        first, second = alone(f), alone(f)
        print(
            f"growing {name} L={L} L_q={L_q}: first call {first * 1e3:.2f} ms, "
            f"second {second * 1e3:.2f} ms"
        )
