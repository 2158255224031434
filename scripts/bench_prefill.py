#!/usr/bin/env python3
"""Peak memory and time of one prefill chunk of quantized attention on the CPU.

One chunk of 512 queries at the end of a cache of L keys (causal: query i sees
keys up to L - 512 + i), 32 query heads sharing 8 KV heads, head dimension
128, B=1. For each cache length it runs, on the CPU stream:

- the fused kernel: mx.fast.quantized_scaled_dot_product_attention over
  turbo4, turbo3 and affine 4-bit (group 64) caches;
- the fallback, which dequantizes all of K and V (turbo) or multiplies the
  packed cache (affine) and materializes the scores: the same call under
  mx.vjp, which is how training reaches it (and what ran for more than 8
  queries before the tiled kernel);
- mx.fast.scaled_dot_product_attention over an unquantized cache in the
  queries' dtype.

"extra MiB" is mx.get_peak_memory() after the call (the peak was reset just
before it) minus the memory that was in use before it: the call's output and
temporaries. It counts what MLX's allocator hands out; the fused kernel's own
per-task buffers (a few hundred KiB a thread) are outside it. Time is the
median wall time of a few runs after a warm-up (one run when a call takes
longer than --slow seconds).

    bench_prefill.py [--lengths 8192 32768] [--dtypes float32 float16]
                     [--out results/prefill_cpu.md]
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import mlx.core as mx

HEADS, KV_HEADS, DIM, CHUNK = 32, 8, 128, 512
FORMATS = {
    "turbo4": dict(mode="turbo4"),
    "turbo3": dict(mode="turbo3"),
    "affine4": dict(mode="affine", group_size=64, bits=4),
}
MiB = 2**20


def measure(fn, rounds, slow):
    """(median seconds, extra peak bytes) of mx.eval(fn())."""
    times, extra = [], 0
    for i in range(rounds + 1):
        mx.synchronize()
        mx.reset_peak_memory()
        before = mx.get_active_memory()
        t = time.perf_counter()
        out = fn()
        mx.eval(out)
        dt = time.perf_counter() - t
        extra = max(extra, mx.get_peak_memory() - before)
        del out
        if i > 0 or dt > slow:
            times.append(dt)
        if dt > slow:
            break
    return statistics.median(times), extra


def bench(length, dtype, rounds, slow, variants):
    mx.random.seed(0)
    scale = DIM**-0.5
    q = mx.random.normal((1, HEADS, CHUNK, DIM)).astype(dtype)
    k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(dtype)
    v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(dtype)
    mx.eval(q, k, v)
    rows = []

    def run(name, fn, cache_bytes):
        if variants and not any(s in name for s in variants):
            return
        seconds, extra = measure(fn, rounds, slow)
        rows.append((name, seconds, extra, cache_bytes))
        print(
            f"  L={length} {dtype} {name}: {seconds * 1e3:.0f} ms, "
            f"{extra / MiB:.1f} MiB",
            flush=True,
        )

    run(
        "sdpa (unquantized)",
        lambda: mx.fast.scaled_dot_product_attention(
            q, k, v, scale=scale, mask="causal"
        ),
        k.nbytes + v.nbytes,
    )
    for name, fmt in FORMATS.items():
        k_parts = mx.quantize(k, **fmt)
        v_parts = mx.quantize(v, **fmt)
        mx.eval(k_parts, v_parts)
        kwargs = dict(scale=scale, causal=True, **fmt)
        if fmt["mode"] == "affine":
            kwargs.update(k_biases=k_parts[2], v_biases=v_parts[2])

        def attend(q, k_parts=k_parts, v_parts=v_parts, kwargs=kwargs):
            return mx.fast.quantized_scaled_dot_product_attention(
                q, k_parts[0], k_parts[1], v_parts[0], v_parts[1], **kwargs
            )

        cache = sum(a.nbytes for a in (*k_parts, *v_parts))
        run(f"{name} fused", lambda: attend(q), cache)
        run(
            f"{name} fallback",
            lambda: mx.vjp(attend, [q], [mx.zeros_like(q)])[0][0],
            cache,
        )
        del k_parts, v_parts
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768])
    parser.add_argument(
        "--dtypes", nargs="+", default=["float32", "float16"], help="query dtypes"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow", type=float, default=10.0)
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only variants naming these"
    )
    parser.add_argument("--out", type=Path, default=Path("results/prefill_cpu.md"))
    args = parser.parse_args()

    mx.set_default_device(mx.cpu)
    lines = [
        "# Quantized SDPA prefill on the CPU: one 512-query chunk",
        "",
        f"Written by scripts/bench_prefill.py on {platform.machine()} "
        f"({platform.processor() or 'cpu'}) with mlx {mx.__version__}.",
        f"B=1, {HEADS} query heads, {KV_HEADS} KV heads, head dim {DIM}, "
        f"{CHUNK} queries at the end of L keys, causal. Query dtype as given "
        "(the cache's floats and the output are in it too). extra MiB = peak "
        "of MLX's allocator during the call minus what was in use before it "
        "(output included); fp16 K/V = size of the unquantized float16 cache. "
        "Time: median wall time.",
        "",
        "| L | dtype | path | ms | x vs fallback | extra MiB "
        "| extra / fp16 K/V | cache MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    table = []
    for length in args.lengths:
        fp16_kv = 2 * KV_HEADS * length * DIM * 2
        for dtype in args.dtypes:
            rows = bench(length, getattr(mx, dtype), args.rounds, args.slow, args.only)
            times = {name: t for name, t, _, _ in rows}
            for name, t, extra, cache in rows:
                fallback = times.get(name.replace("fused", "fallback"))
                vs = f"{fallback / t:.2f}" if "fused" in name and fallback else ""
                line = (
                    f"| {length} | {dtype} | {name} | {t * 1e3:.0f} | {vs} "
                    f"| {extra / MiB:.1f} | {extra / fp16_kv:.3f} "
                    f"| {cache / MiB:.1f} |"
                )
                table.append(line)
    lines += table
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
