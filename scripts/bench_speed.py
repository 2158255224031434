#!/usr/bin/env python3
"""Decode speed of quantized attention on the CPU, side by side in one run.

One query per sequence (decode), 32 query heads sharing 8 KV heads, head
dimension 128. For each context length and query dtype it times
mx.fast.scaled_dot_product_attention on float K/V, and
mx.fast.quantized_scaled_dot_product_attention with turbo3, turbo4 and
affine 4-bit (group 64) caches through the fused CPU kernel and through the
composed fallback. The fallback is what runs outside the kernel's envelope;
here it is reached the way training reaches it, under mx.vjp.

Each time is the median of rounds after a warm-up; in every round each
variant runs once, so they all see the machine in the same state. "GB/s" is the bytes of
K/V (and scales, biases) read per second, next to the copy bandwidth of this
machine measured in the same run (bytes read plus written per second).

    bench_speed.py [--lengths 1024 4096 16384 65536] [--out results/speed_cpu.md]
"""

import argparse
import platform
import statistics
import time
from functools import partial
from pathlib import Path

import mlx.core as mx
import numpy as np

HEADS, KV_HEADS, DIM = 32, 8, 128
FORMATS = {
    "turbo3": dict(mode="turbo3"),
    "turbo4": dict(mode="turbo4"),
    "affine4": dict(mode="affine", group_size=64, bits=4),
}


def median_times(fns, rounds=7, slow=5.0):
    """Median wall time in seconds of each fn(), after a warm-up call. The
    functions take turns, so that each round sees the machine in the same
    state; a function slower than `slow` seconds is timed once."""
    times = {}
    for name, fn in fns.items():
        t = time.perf_counter()
        mx.eval(fn())
        times[name] = (
            [time.perf_counter() - t] if time.perf_counter() - t > slow else []
        )
    for _ in range(rounds):
        for name, fn in fns.items():
            if len(times[name]) == 1 and times[name][0] > slow:
                continue
            t = time.perf_counter()
            mx.eval(fn())
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def copy_bandwidth():
    """Bytes read plus written per second by a large memory copy."""
    src = np.ones(64 * 2**20, dtype=np.float32)
    dst = np.empty_like(src)
    times = []
    for _ in range(7):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / statistics.median(times)


def nbytes(*arrays):
    return sum(a.nbytes for a in arrays)


def bench_length(length, dtype):
    """Rows of (name, seconds, bytes of K/V read) for one context length."""
    mx.random.seed(0)
    scale = DIM**-0.5
    q = mx.random.normal((1, HEADS, 1, DIM)).astype(dtype)
    k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(dtype)
    v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(dtype)
    mx.eval(q, k, v)
    fns = {"sdpa": lambda: mx.fast.scaled_dot_product_attention(q, k, v, scale=scale)}
    read = {"sdpa": nbytes(k, v)}
    for name, fmt in FORMATS.items():
        k_parts = mx.quantize(k, **fmt)
        v_parts = mx.quantize(v, **fmt)
        mx.eval(k_parts, v_parts)
        kwargs = dict(scale=scale, **fmt)
        if fmt["mode"] == "affine":
            kwargs.update(k_biases=k_parts[2], v_biases=v_parts[2])

        def attend(q, k_parts=k_parts, v_parts=v_parts, kwargs=kwargs):
            return mx.fast.quantized_scaled_dot_product_attention(
                q, k_parts[0], k_parts[1], v_parts[0], v_parts[1], **kwargs
            )

        fns[f"{name} fused"] = partial(attend, q)
        fns[f"{name} fallback"] = partial(
            lambda attend: mx.vjp(attend, [q], [mx.zeros_like(q)])[0][0], attend
        )
        read[f"{name} fused"] = read[f"{name} fallback"] = nbytes(*k_parts, *v_parts)
    times = median_times(fns)
    return [(name, times[name], read[name]) for name in fns]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[1024, 4096, 16384, 65536]
    )
    parser.add_argument("--out", type=Path, default=Path("results/speed_cpu.md"))
    args = parser.parse_args()

    mx.set_default_device(mx.cpu)
    bandwidth = copy_bandwidth()
    lines = [
        "# Quantized SDPA decode on the CPU",
        "",
        f"Written by `make bench-speed` (scripts/bench_speed.py) on "
        f"{platform.machine()} with {mx.__version__}.",
        f"B=1, {HEADS} query heads, {KV_HEADS} KV heads, head dim {DIM}, one "
        "query. Median wall time; x = speed-up over float32 SDPA at the same "
        "length; GB/s = K/V bytes read per second. Copy bandwidth of this "
        f"machine in the same run: {bandwidth / 1e9:.1f} GB/s (read + write).",
        "",
        "| L | queries | kernel | ms | x vs f32 sdpa | x vs fallback | GB/s |",
        "|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for length in args.lengths:
        f32_sdpa = None
        for dtype in (mx.float32, mx.float16):
            rows = bench_length(length, dtype)
            times = {name: t for name, t, _ in rows}
            f32_sdpa = f32_sdpa or times["sdpa"]
            for name, t, read in rows:
                fallback = times.get(name.replace("fused", "fallback"))
                vs_fallback = f"{fallback / t:.1f}" if "fused" in name else ""
                line = (
                    f"| {length} | {str(dtype).split('.')[-1]} | {name} "
                    f"| {t * 1e3:.2f} | {f32_sdpa / t:.2f} | {vs_fallback} "
                    f"| {read / t / 1e9:.1f} |"
                )
                lines.append(line)
                print(line, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
