#!/usr/bin/env python3
"""Where an MLX quantized decode call's time goes beyond its kernels.

On 2026-12-06 (results/speed_cuda_h100_rerun.md) bench_speed_cuda.py's B=1
turbo4 rows through MLX took 41-49 us at 32K keys on an H100 while the same
kernels, launched by the checker, took 29-31 us a call. This times one call
of mx.fast.quantized_scaled_dot_product_attention (turbo4 keys and values,
B=1, 32 query heads, 8 KV heads, head dimension 128, float16) in the ways
that could tell the two apart:

- together: 20 calls issued, then one eval (bench_speed_cuda.py's way), with
  the caches of its other four formats alive as it holds them;
- together, one cache: the same with only the turbo4 cache alive;
- alone: each call evaluated and waited for (mx.synchronize) on its own;
- together, made on the device: the second way over a turbo4 cache quantized
  on the device instead, as mlx-lm quantizes its caches;
- chained, made on the device: each call's output is the next call's query,
  then one eval: the calls run one after another, as a model's layers do
  (the 20 calls issued together do not depend on each other, so a CUDA
  graph may run their kernels at once);
- pipelined, made on the device: each call handed to mx.async_eval as it is
  made (a graph of its own, launched while the next is encoded, as mlx-lm's
  generation overlaps its steps), then one eval of them all;

each in a process with CUDA graphs on and one with them off
(MLX_USE_CUDA_GRAPHS, which MLX reads once a process).

The first three ways' caches are quantized on the CPU, as bench_speed_cuda.py's
were until 2026-12-07. On CUDA, MLX gives an array made on the CPU managed
memory (cudaMallocManaged) and a kernel's output on the GPU device memory. On
an H100 (2026-12-07, results/mlx_overhead_h100_memory.md) the second and fourth
ways differed by 5-10 us either way, as much as runs of one way differ. The
cache made on the device is alive in every way.

    mlx_overhead.py [--lengths 4096 32768 131072] [--device gpu|cpu]
                    [--out FILE]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_speed_cuda import (  # noqa: E402
    CALLS,
    DIM,
    FORMATS,
    HEADS,
    KV_HEADS,
    chained_seconds_per_call,
    median_per_call,
    pipelined_seconds_per_call,
)

WAYS = (
    "together",
    "together, one cache",
    "alone",
    "together, made on the device",
    "chained, made on the device",
    "pipelined, made on the device",
)


def child(args):
    """Prints a JSON line per length: microseconds a call, each way."""
    import mlx.core as mx

    mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
    for length in args.lengths:
        mx.random.seed(0)
        k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
        v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
        q = mx.random.normal((1, HEADS, 1, DIM)).astype(mx.float16)
        packed = {}
        for name, (kf, vf) in FORMATS.items():
            kp = mx.quantize(k, **kf, stream=mx.cpu)
            vp = mx.quantize(v, **vf, stream=mx.cpu)
            mx.eval(kp, vp)
            packed[name] = (kp, vp)
        on_device = [mx.quantize(a, mode="turbo4") for a in (k, v)]
        mx.eval(q, on_device)
        del k, v
        kp, vp = packed["turbo4"]

        def attend(q=q):
            return mx.fast.quantized_scaled_dot_product_attention(
                q,
                kp[0],
                kp[1],
                vp[0],
                vp[1],
                scale=DIM**-0.5,
                mode="turbo4",
                v_mode="turbo4",
            )

        def together():
            mx.eval([attend() for _ in range(CALLS)])

        def alone():
            for _ in range(CALLS):
                mx.eval(attend())
                mx.synchronize()

        times = {"together": median_per_call(together)}
        packed = {"turbo4": packed["turbo4"]}
        mx.clear_cache()
        times["together, one cache"] = median_per_call(together)
        times["alone"] = median_per_call(alone)
        kp, vp = on_device
        times["together, made on the device"] = median_per_call(together)
        times["chained, made on the device"] = chained_seconds_per_call(attend, q)
        times["pipelined, made on the device"] = pipelined_seconds_per_call(attend)
        print(json.dumps({"length": length, **{w: t * 1e6 for w, t in times.items()}}))
        sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 32768, 131072])
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    rows = [
        "| L | CUDA graphs | " + " | ".join(WAYS) + " |",
        "|---|---|" + "---|" * len(WAYS),
    ]
    for graphs in ("1", "0"):
        command = [
            sys.executable,
            __file__,
            "--child",
            "--device",
            args.device,
            "--lengths",
        ]
        proc = subprocess.run(
            command + [str(n) for n in args.lengths],
            env={**os.environ, "MLX_USE_CUDA_GRAPHS": graphs},
            capture_output=True,
            text=True,
        )
        lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        for r in lines:
            times = " | ".join(f"{r[w]:.1f}" for w in WAYS)
            rows.append(
                f"| {r['length']} | {'on' if graphs == '1' else 'off'} | {times} |"
            )
        if proc.returncode != 0 or len(lines) != len(args.lengths):
            rows.append(
                f"\nMLX_USE_CUDA_GRAPHS={graphs}: exit status {proc.returncode}"
            )
            rows.append(proc.stderr.strip()[-2000:])
    text = (
        f"turbo4, B=1, us a call ({CALLS} calls a round, median of 7 rounds)\n\n"
        + "\n".join(rows)
    )
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
