#!/usr/bin/env python3
"""TurboQuant quantize and dequantize on a CUDA GPU, and one decode step of a
KV cache, side by side in one run.

Quantize and dequantize a (1, 8, L, 128) float16 cache with turbo3, turbo4
and affine 4-bit group 64; GB/s counts the bytes each call must move (the
float16 input or output, the codes, the scales and biases), against the copy
bandwidth of the card measured in the same run (bytes read + written per
second by `x * 1`).

A decode step the way a KV cache does it, at L keys, 32 query heads: the
float16 step writes the new token's keys and values into the cache (slice
update) and runs float16 mx.fast.scaled_dot_product_attention; the turbo4
step quantizes the token's keys and values, writes codes and scales into the
quantized cache and runs the fused quantized attention. Each time is the
median over rounds of a batch of calls evaluated together.

    bench_quantize_cuda.py [--lengths 32768 131072] [--out results/quantize_cuda.md]
"""

import argparse
import os
import sys
from pathlib import Path

import mlx.core as mx

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Timed and measured the same way as the decode benchmark.
from bench_speed_cuda import (  # noqa: E402
    CALLS,
    DIM,
    HEADS,
    KV_HEADS,
    copy_bandwidth,
    seconds_per_call,
)

FORMATS = {
    "turbo3": dict(mode="turbo3"),
    "turbo4": dict(mode="turbo4"),
    "affine4 g64": dict(mode="affine", bits=4, group_size=64),
}


def quantize_rows(length):
    x = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
    mx.eval(x)
    rows = []
    for name, fmt in FORMATS.items():
        packed = mx.quantize(x, **fmt)
        mx.eval(packed)
        moved = x.nbytes + sum(a.nbytes for a in packed)
        t = seconds_per_call(lambda: mx.quantize(x, **fmt))
        rows.append((f"{name} quantize", t, moved))
        t = seconds_per_call(lambda: mx.dequantize(*packed, **fmt))
        rows.append((f"{name} dequantize", t, moved))
    return rows


def decode_rows(length):
    scale = DIM**-0.5
    q = mx.random.normal((1, HEADS, 1, DIM)).astype(mx.float16)
    k1, v1 = (
        mx.random.normal((1, KV_HEADS, 1, DIM)).astype(mx.float16) for _ in range(2)
    )
    cache = {
        "k": mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16),
        "v": mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16),
    }
    cache["kq"] = list(mx.quantize(cache["k"], mode="turbo4"))
    cache["vq"] = list(mx.quantize(cache["v"], mode="turbo4"))
    mx.eval(q, k1, v1, cache)
    last = slice(length - 1, length)

    def float16_step():
        cache["k"][..., last, :] = k1
        cache["v"][..., last, :] = v1
        return mx.fast.scaled_dot_product_attention(
            q, cache["k"], cache["v"], scale=scale
        )

    def turbo4_step():
        for name, x in (("kq", k1), ("vq", v1)):
            for buffer, part in zip(cache[name], mx.quantize(x, mode="turbo4")):
                buffer[..., last, :] = part
        (kq, ks), (vq, vs) = cache["kq"], cache["vq"]
        return mx.fast.quantized_scaled_dot_product_attention(
            q, kq, ks, vq, vs, scale=scale, mode="turbo4"
        )

    f16 = seconds_per_call(float16_step)
    t4 = seconds_per_call(turbo4_step)
    return [
        ("decode step, float16 cache", f16, cache["k"].nbytes * 2),
        (
            "decode step, turbo4 cache",
            t4,
            sum(a.nbytes for a in (*cache["kq"], *cache["vq"])),
        ),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[32768, 131072])
    parser.add_argument("--out", type=Path, default=Path("results/quantize_cuda.md"))
    args = parser.parse_args()
    mx.set_default_device(mx.gpu)
    mx.random.seed(0)
    bandwidth = copy_bandwidth()
    cudnn = os.environ.get("MLX_CUDA_USE_CUDNN_SDPA", "1") != "0"
    info = getattr(mx.cuda, "device_info", None) or mx.device_info
    name = info().get("device_name", "CUDA GPU")
    lines = [
        "# TurboQuant quantize, dequantize and a decode step on a CUDA GPU",
        "",
        f"Written by scripts/bench_quantize_cuda.py on {name} with mlx "
        f"{mx.__version__}. A (1, {KV_HEADS}, L, {DIM}) float16 cache; median "
        f"time per call over rounds of {CALLS} calls; GB/s = bytes the call must "
        "read and write, per second; copy bandwidth of the card in the same run: "
        f"{bandwidth / 1e9:.0f} GB/s (read + write). Decode step: one token's "
        f"keys and values written into the cache, then attention of {HEADS} "
        f"query heads over L keys; float16 SDPA with cuDNN "
        f"{'on' if cudnn else 'off (MLX_CUDA_USE_CUDNN_SDPA=0)'}.",
        "",
        "| L | what | us | GB/s | of copy |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for length in args.lengths:
        for what, t, moved in quantize_rows(length) + decode_rows(length):
            line = (
                f"| {length} | {what} | {t * 1e6:.1f} | {moved / t / 1e9:.0f} "
                f"| {100 * moved / t / bandwidth:.0f}% |"
            )
            lines.append(line)
            print(line, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
