#!/usr/bin/env python3
"""Where a prefill chunk's GPU time goes: each kernel's duration under ncu.

One chunk of 512 queries at the end of a cache of 32K keys (B=1, 32 query /
8 KV heads, head dim 128, float16, causal), as bench_prefill.py runs it:
MLX's float16 SDPA over the unquantized cache (cuDNN's), the quantized call
over turbo4 keys and values (with cuDNN on: cuDNN over chunks of decoded
keys and values), and mx.dequantize of both followed by the float16 SDPA.
Each runs once to warm up (cuDNN builds its plans), then once between two
marker kernels (an arange), so that the kernels of the second run can be
told apart. ncu times each kernel on its own (serialized, caches left as
they are: --cache-control none), so the sums leave out the gaps between
kernels and MLX's work on the host: what the GPU spends on the call.

    prefill_kernels.py [--length 32768] [--out FILE]   runs itself under ncu
"""

import argparse
import csv
import io
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

HEADS, KV_HEADS, DIM, CHUNK = 32, 8, 128, 512
RUNS = ("float16 sdpa (unquantized)", "turbo4 (the call)", "turbo4 dequant+sdpa")
MARKER = "arange"


def child(length):
    import mlx.core as mx

    mx.random.seed(0)
    q = mx.random.normal((1, HEADS, CHUNK, DIM)).astype(mx.float16)
    k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
    v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
    kq = mx.quantize(k, mode="turbo4", stream=mx.cpu)
    vq = mx.quantize(v, mode="turbo4", stream=mx.cpu)
    mx.eval(q, k, v, kq, vq)
    scale = DIM**-0.5

    def sdpa(k, v):
        return mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")

    def dequantize(parts):
        return mx.dequantize(*parts, mode="turbo4", dtype=mx.float16)

    calls = {
        RUNS[0]: lambda: sdpa(k, v),
        RUNS[1]: lambda: mx.fast.quantized_scaled_dot_product_attention(
            q, kq[0], kq[1], vq[0], vq[1], scale=scale, causal=True, mode="turbo4"
        ),
        RUNS[2]: lambda: sdpa(dequantize(kq), dequantize(vq)),
    }
    for name in RUNS:
        mx.eval(calls[name]())
        mx.synchronize()
        mx.eval(mx.arange(7))
        mx.synchronize()
        mx.eval(calls[name]())
        mx.synchronize()
        mx.eval(mx.arange(7))
        mx.synchronize()


def kind_of(kernel):
    for part, kind in (
        ("decode_chunk", "decode (chunk of K/V)"),
        ("fold_chunk", "fold (into the running output)"),
        ("dequantize", "dequantize"),
    ):
        if part in kernel:
            return kind
    return kernel.split("(")[0].split("<")[0][:60]


def table(rows, length):
    """Markdown of the kernels between each pair of markers."""
    names = [r["Kernel Name"] for r in rows]
    marks = [i for i, n in enumerate(names) if MARKER in n]
    lines = [
        "# One prefill chunk's kernels under ncu",
        "",
        f"Written by scripts/cuda/prefill_kernels.py: {CHUNK} queries at the end "
        f"of {length} keys, B=1, {HEADS} query / {KV_HEADS} KV heads, D={DIM}, "
        "float16, causal, MLX's defaults (cuDNN on). Each kernel's "
        "gpu__time_duration under ncu (serialized, --cache-control none), "
        "summed by kind, for the second of two runs: the GPU's time without "
        "the gaps between kernels or MLX's host work.",
        "",
        "| run | kernel | launches | us |",
        "|---|---|---|---|",
    ]
    for run, (a, b) in zip(RUNS, zip(marks[0::2], marks[1::2])):
        sums, counts = defaultdict(float), defaultdict(int)
        for r in rows[a + 1 : b]:
            kind = kind_of(r["Kernel Name"])
            sums[kind] += r["us"]
            counts[kind] += 1
        for kind in sorted(sums, key=sums.get, reverse=True):
            lines.append(f"| {run} | {kind} | {counts[kind]} | {sums[kind]:.1f} |")
        lines.append(
            f"| {run} | **all** | {sum(counts.values())} | "
            f"**{sum(sums.values()):.1f}** |"
        )
    if len(marks) != 2 * len(RUNS):
        lines += ["", f"(Found {len(marks)} markers, not {2 * len(RUNS)}.)"]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=32768)
    parser.add_argument("--out", type=Path, default=Path("results/prefill_kernels.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.length)
        return
    cmd = ["ncu", "--clock-control", "none", "--cache-control", "none"]
    cmd += ["--metrics", "gpu__time_duration.sum", "--csv", "--page", "raw"]
    cmd += ["--print-units", "base"]
    cmd += [sys.executable, __file__, "--child", "--length", str(args.length)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith('"')]
    if out.returncode != 0 or not lines:
        sys.exit(
            f"ncu failed ({out.returncode}):\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        )
    # The raw page's second line gives the units.
    units, *rows = csv.DictReader(io.StringIO("\n".join(lines)))
    unit = units["gpu__time_duration.sum"]
    per_us = {"ns": 1e3, "nsecond": 1e3, "us": 1, "usecond": 1, "ms": 1e-3}[unit]
    for r in rows:
        r["us"] = float(r["gpu__time_duration.sum"].replace(",", "")) / per_us
    text = table(rows, args.length)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
