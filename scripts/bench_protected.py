#!/usr/bin/env python3
"""What keeping the first tokens of a TurboQuant KV cache in float16
(mlx_lm's --kv-protect N, TurboQuantKVCache(protect=N)), or its last ones
(--kv-recent N, TurboQuantKVCache(recent=N)), costs a decoding step's
attention, side by side in one run.

For every cache length it fills one layer's cache (batch 1, 12 query and 2 KV
heads, head dim 128: Qwen2.5-1.5B's attention) with random float16 keys and
values (and one more token, as the decoding step's update adds it), then
times one query token's attention through mlx-lm's
scaled_dot_product_attention, the caches in turn, round after round, and
reports the median. As in a model's prefill, the first chunk's attention
scales the TurboQuant keys (TurboQuantKVCache's default scale_keys; the
"keys unscaled" row without it), so the queries are scaled at every step
too. The protected and recent caches take the fused kernel's output with
its log-sum-exp (return_lse=True) and add the float16 tokens' part, a few
small operations more; the float16 row is mx.fast.scaled_dot_product_attention
over a plain KVCache, what a user would otherwise run (and float32, which
MLX's CPU computes faster than float16). What protecting
buys is in results/model.md (bench_model.py's +pN and +rN rows).

    scripts/bench_protected.py                 # writes results/protected_decode_cpu.md
    scripts/bench_protected.py --lengths 1024 --rounds 20
"""

import argparse
import platform
import statistics
import time
from pathlib import Path

import mlx.core as mx
from mlx_lm.models.base import scaled_dot_product_attention
from mlx_lm.models.cache import KVCache, TurboQuantKVCache

HEADS, KV_HEADS, DIM = 12, 2, 128

# Row name -> a fresh cache (float32: a KVCache given float32 keys, values
# and queries).
CACHES = {
    "float16": KVCache,
    "float32": KVCache,
    "turbo4": lambda: TurboQuantKVCache("turbo4"),
    "turbo4, keys unscaled": lambda: TurboQuantKVCache("turbo4", scale_keys=False),
    "turbo4, protect 1": lambda: TurboQuantKVCache("turbo4", protect=1),
    "turbo4, protect 64": lambda: TurboQuantKVCache("turbo4", protect=64),
    "k4v3": lambda: TurboQuantKVCache("turbo4", "turbo3"),
    "k4v3, protect 1": lambda: TurboQuantKVCache("turbo4", "turbo3", protect=1),
    "turbo4, recent 8": lambda: TurboQuantKVCache("turbo4", recent=8),
    "turbo4, protect 1, recent 8": lambda: TurboQuantKVCache(
        "turbo4", protect=1, recent=8
    ),
    "turbo3": lambda: TurboQuantKVCache("turbo3"),
    "turbo3, protect 1, recent 8": lambda: TurboQuantKVCache(
        "turbo3", protect=1, recent=8
    ),
}


def filled(make, length, seed, dtype):
    cache = make()
    key = mx.random.key(seed)
    k, v = mx.random.normal((2, 1, KV_HEADS, length, DIM), key=key).astype(dtype)
    # A float16 model's prefill chunks; the first chunk's attention scales
    # TurboQuant keys (from 16 of its queries here)
    for start in range(0, length, 2048):
        keys, values = cache.update_and_fetch(
            k[..., start : start + 2048, :], v[..., start : start + 2048, :]
        )
        if start == 0 and isinstance(cache, TurboQuantKVCache):
            q = mx.random.normal((1, HEADS, 16, DIM), key=key).astype(dtype)
            keys, values = cache.measure_key_scale(q) or (keys, values)
        mx.eval(keys, values)
    # and the first decoding step's token: the recent tokens are then the
    # last `recent` before it and itself, as at every step
    one = mx.random.normal((2, 1, KV_HEADS, 1, DIM), key=mx.random.key(seed + 1))
    keys, values = cache.update_and_fetch(*one.astype(dtype))
    mx.eval(keys, values)
    return cache, keys, values


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()

    q = mx.random.normal((1, HEADS, 1, DIM), key=mx.random.key(1)).astype(mx.float16)
    rows = {}
    for length in args.lengths:
        dtypes = {n: mx.float32 if n == "float32" else mx.float16 for n in CACHES}
        setups = {
            name: filled(make, length, 0, dtypes[name]) for name, make in CACHES.items()
        }

        def attend(name):
            cache, keys, values = setups[name]
            return scaled_dot_product_attention(
                q.astype(dtypes[name]), keys, values, cache, scale=DIM**-0.5, mask=None
            )

        times = {name: [] for name in setups}
        for name in setups:  # warm up
            mx.eval(attend(name))
        names = list(setups)
        for r in range(args.rounds):
            # Each round starts one cache further on: the cache timed after
            # a slow one (float16, float32) runs slower, so every cache takes
            # every place in turn
            for name in names[r % len(names) :] + names[: r % len(names)]:
                tic = time.perf_counter()
                mx.eval(attend(name))
                times[name].append(time.perf_counter() - tic)
        for name, t in times.items():
            rows.setdefault(name, {})[length] = statistics.median(t) * 1e6
        line = "  ".join(f"{n} {rows[n][length]:.0f}" for n in setups)
        print(f"{length:6d} keys: {line} (us)", flush=True)

    lines = [
        "# The decoding cost of protected and recent tokens and scaled keys (CPU)",
        "",
        "Written by scripts/bench_protected.py; do not edit by hand.",
        "",
        f"{platform.machine()}, mlx {mx.__version__}, {mx.default_device()}. "
        f"One decoding step's attention of one layer (batch 1, {HEADS} query and "
        f"{KV_HEADS} KV heads, head dim {DIM}, float16 queries), through "
        "mlx-lm's scaled_dot_product_attention over each cache filled with "
        "random float16 keys and values (float32 for the float32 row); median of "
        f"{args.rounds} rounds, the caches in turn in every round, each round "
        "starting one cache further on. Microseconds "
        "(lower is better), and in brackets the ratio to the same format "
        "without protected or recent tokens (or with its keys scaled). TurboQuant "
        "keys are scaled (TurboQuantKVCache's default) except in the "
        "unscaled row.",
        "",
        "| cache | " + " | ".join(f"{n} keys" for n in args.lengths) + " |",
        "|---|" + "---|" * len(args.lengths),
    ]
    for name, by_length in rows.items():
        base = rows.get(name.split(",")[0])
        cells = []
        for n in args.lengths:
            cell = f"{by_length[n]:.0f}"
            if base is not by_length and base is not None:
                cell += f" ({by_length[n] / base[n]:.2f}x)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "protected_decode_cpu.md"
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
