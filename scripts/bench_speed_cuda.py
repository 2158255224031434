#!/usr/bin/env python3
"""Decode speed of quantized attention on a CUDA GPU, side by side in one run.

One query, 32 query heads sharing 8 KV heads, head dimension 128, float16
queries. It times float16 mx.fast.scaled_dot_product_attention and
mx.fast.quantized_scaled_dot_product_attention with turbo3, turbo4, affine
4- and 8-bit and K8V4 (8-bit affine keys, turbo4 values) caches, through the
fused kernel and (for two formats) through the fallback, reached under
mx.vjp. Each time is the median over rounds of a batch of calls evaluated
together, so launch overheads are amortized; GB/s counts the K/V bytes
(scales and biases included) that a call must read, against the copy
bandwidth of the card measured in the same run.

    bench_speed_cuda.py [--lengths 4096 32768 131072] [--out results/speed_cuda.md]
"""

import argparse
import statistics
import time
from pathlib import Path

import mlx.core as mx

HEADS, KV_HEADS, DIM = 32, 8, 128
CALLS = 20
FORMATS = {
    "turbo3": (dict(mode="turbo3"), dict(mode="turbo3")),
    "turbo4": (dict(mode="turbo4"), dict(mode="turbo4")),
    "affine4 g64": (dict(mode="affine", bits=4, group_size=64),) * 2,
    "affine8 g64": (dict(mode="affine", bits=8, group_size=64),) * 2,
    "K8V4": (dict(mode="affine", bits=8, group_size=64), dict(mode="turbo4")),
}
FALLBACKS = ("turbo4", "affine4 g64")


def seconds_per_call(fn, rounds=7):
    mx.eval(fn())
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        mx.eval([fn() for _ in range(CALLS)])
        times.append((time.perf_counter() - t) / CALLS)
    return statistics.median(times)


def copy_bandwidth():
    x = mx.random.uniform(shape=(256 * 2**20,))
    mx.eval(x)
    return 2 * x.nbytes / seconds_per_call(lambda: x * 1)


def bench(length):
    mx.random.seed(0)
    q = mx.random.normal((1, HEADS, 1, DIM)).astype(mx.float16)
    k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
    v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
    mx.eval(q, k, v)
    scale = DIM**-0.5
    rows = [
        (
            "float16 sdpa",
            seconds_per_call(
                lambda: mx.fast.scaled_dot_product_attention(q, k, v, scale=scale)
            ),
            k.nbytes + v.nbytes,
        )
    ]
    for name, (kf, vf) in FORMATS.items():
        # Quantized on the CPU: some of the GPU's composed turbo quantize
        # kernels fail to launch at these sizes.
        kp = mx.quantize(k, **kf, stream=mx.cpu)
        vp = mx.quantize(v, **vf, stream=mx.cpu)
        mx.eval(kp, vp)
        kwargs = dict(scale=scale, **kf)
        kwargs.update({f"v_{key}": value for key, value in vf.items()})
        if kf["mode"] == "affine":
            kwargs["k_biases"] = kp[2]
        if vf["mode"] == "affine":
            kwargs["v_biases"] = vp[2]

        def attend(q, kp=kp, vp=vp, kwargs=kwargs):
            return mx.fast.quantized_scaled_dot_product_attention(
                q, kp[0], kp[1], vp[0], vp[1], **kwargs
            )

        read = sum(a.nbytes for a in (*kp, *vp))
        rows.append((f"{name} fused", seconds_per_call(lambda: attend(q)), read))
        if name in FALLBACKS:
            fallback = lambda: mx.vjp(attend, [q], [mx.zeros_like(q)])[0][0]
            rows.append((f"{name} fallback", seconds_per_call(fallback, 3), read))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 32768, 131072])
    parser.add_argument("--out", type=Path, default=Path("results/speed_cuda.md"))
    args = parser.parse_args()
    mx.set_default_device(mx.gpu)
    bandwidth = copy_bandwidth()
    name = (
        mx.cuda.device_info().get("device_name", "CUDA GPU")
        if hasattr(mx.cuda, "device_info")
        else "CUDA GPU"
    )
    lines = [
        "# Quantized SDPA decode on a CUDA GPU",
        "",
        f"Written by scripts/bench_speed_cuda.py on {name} with mlx {mx.__version__}.",
        f"B=1, {HEADS} query heads, {KV_HEADS} KV heads, head dim {DIM}, one float16 "
        "query. Median time per call over rounds of "
        f"{CALLS} calls; x = speed-up over float16 SDPA at the same length; "
        f"GB/s = K/V bytes read per second. Copy bandwidth of the card in the same "
        f"run: {bandwidth / 1e9:.0f} GB/s (read + write).",
        "",
        "| L | kernel | us | x vs f16 sdpa | GB/s | of copy |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for length in args.lengths:
        rows = bench(length)
        base = rows[0][1]
        for kernel, t, read in rows:
            line = (
                f"| {length} | {kernel} | {t * 1e6:.1f} | {base / t:.2f} "
                f"| {read / t / 1e9:.0f} | {100 * read / t / bandwidth:.0f}% |"
            )
            lines.append(line)
            print(line, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
