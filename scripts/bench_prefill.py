#!/usr/bin/env python3
"""Peak memory and time of one prefill chunk of quantized attention.

One chunk of 512 queries at the end of a cache of L keys (causal: query i sees
keys up to L - 512 + i), 32 query heads sharing 8 KV heads, head dimension
128, B=1, on the CPU (--device cpu, the default) or on a CUDA GPU (--device
gpu). For each cache length it runs:

- the fused kernel: mx.fast.quantized_scaled_dot_product_attention over
  turbo4, turbo3 and affine 4-bit (group 64) caches (where a backend has no
  kernel for the shape, the call itself falls back: the graph column says
  what MLX built). On CUDA with cuDNN on, the call decodes the keys and
  values a chunk at a time for cuDNN's SDPA;
- on the GPU also "tiled": the same call with
  MLX_CUDA_QUANTIZED_SDPA_CUDNN=0, which takes the tiled tensor-core kernel
  instead of cuDNN (in a child process of its own, since MLX reads the
  variable once);
- the fallback, which dequantizes all of K and V (turbo, and every format on
  the GPU) or multiplies the packed cache (affine on the CPU) and attends
  with ordinary ops: the same call under mx.vjp, which is how training
  reaches it (and what ran for more than 8 queries before the tiled kernel);
- on the GPU also "dequant+sdpa": mx.dequantize of K and V, then
  mx.fast.scaled_dot_product_attention, which is what the call runs for
  inference where no kernel covers it (the vjp fallback asks the SDPA for its
  logsumexp too);
- mx.fast.scaled_dot_product_attention over an unquantized cache in the
  queries' dtype (on the GPU its cuDNN path, unless MLX_CUDA_USE_CUDNN_SDPA=0).

"extra MiB" is mx.get_peak_memory() after the call (the peak was reset just
before it) minus the memory that was in use before it: the call's output and
temporaries. It counts what MLX's allocator hands out; the CPU kernel's own
per-task buffers (a few hundred KiB a thread) are outside it. Time is the
median wall time of a few runs after a warm-up (one run when a call takes
longer than --slow seconds). On the GPU each row is also timed as a model's
layers issue it: --together calls (10) issued before one mx.eval, the median
wall time of a few such rounds divided by their number, so that MLX's work
on the host for one call overlaps the GPU's for another ("ms, 10 together").

On the GPU (or with --isolate) each format's rows, and the unquantized SDPA,
run in a child process of their own, so that a crash (cuDNN's SDPA crashed
on one machine) costs only those rows: the table notes what was lost. The
table is rewritten after each of them.

    bench_prefill.py [--device cpu|gpu] [--lengths 8192 32768]
                     [--dtypes float32 float16] [--out results/prefill_cpu.md]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlx.core as mx

# A child's result lines, and what built a call's graph: as for decoding.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed_cuda import TAG, graph_of, seconds_per_call  # noqa: E402

HEADS, KV_HEADS, DIM, CHUNK = 32, 8, 128, 512
FORMATS = {
    "turbo4": dict(mode="turbo4"),
    "turbo3": dict(mode="turbo3"),
    "affine4": dict(mode="affine", group_size=64, bits=4),
}
SDPA = "sdpa (unquantized)"
CUDNN = "MLX_CUDA_USE_CUDNN_SDPA"
TILED = "MLX_CUDA_QUANTIZED_SDPA_CUDNN"
MiB = 2**20
# Substrings of the rows to run (--only); empty: all.
ONLY = []


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


def groups_of(variants):
    """The groups of rows, each run together: the unquantized SDPA, one per
    format, and one per format's tiled row, which needs a process with TILED=0
    (only those with rows that --only leaves)."""

    def rows(group):
        if group == SDPA:
            return [SDPA]
        if group.endswith(" tiled"):
            return [group] if "tiled" in variants else []
        return [f"{group} {v}" for v in variants if v != "tiled"]

    groups = [SDPA, *FORMATS, *(f"{f} tiled" for f in FORMATS)]
    return [g for g in groups if any(selected(n) for n in rows(g))]


def selected(name):
    return not ONLY or any(s in name for s in ONLY)


def bench(length, dtype, group, args, emit):
    """Runs the rows of `group` (SDPA or a format) and emits each."""
    mx.random.seed(0)
    scale = DIM**-0.5
    q = mx.random.normal((1, HEADS, CHUNK, DIM)).astype(dtype)
    k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(dtype)
    v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(dtype)
    mx.eval(q, k, v)

    def run(name, fn, cache_bytes):
        if not selected(name) or (
            name != SDPA and name.split()[-1] not in args.variants
        ):
            return
        row = dict(kind="row", length=length, dtype=str(dtype).split(".")[-1])
        row.update(name=name, cache=cache_bytes)
        try:
            graph = graph_of(fn())
            seconds, extra = measure(fn, args.rounds, args.slow)
            if args.together:
                row["together"] = seconds_per_call(fn, args.rounds, args.together)
        except Exception as e:
            emit(dict(row, error=f"{type(e).__name__}: {e}"))
            return
        emit(dict(row, seconds=seconds, extra=extra, graph=graph))

    if group == SDPA:
        run(
            SDPA,
            lambda: mx.fast.scaled_dot_product_attention(
                q, k, v, scale=scale, mask="causal"
            ),
            k.nbytes + v.nbytes,
        )
        return
    group, _, tiled = group.partition(" ")
    fmt = FORMATS[group]
    # Quantized on the device that attends, as in bench_speed_cuda.py.
    k_parts = mx.quantize(k, **fmt)
    v_parts = mx.quantize(v, **fmt)
    mx.eval(k_parts, v_parts)
    del k, v
    kwargs = dict(scale=scale, causal=True, **fmt)
    if fmt["mode"] == "affine":
        kwargs.update(k_biases=k_parts[2], v_biases=v_parts[2])

    def attend(q):
        return mx.fast.quantized_scaled_dot_product_attention(
            q, k_parts[0], k_parts[1], v_parts[0], v_parts[1], **kwargs
        )

    def dequantize_then_attend():
        def dequantize(parts):
            biases = parts[2] if fmt["mode"] == "affine" else None
            return mx.dequantize(parts[0], parts[1], biases, **fmt, dtype=q.dtype)

        return mx.fast.scaled_dot_product_attention(
            q, dequantize(k_parts), dequantize(v_parts), scale=scale, mask="causal"
        )

    cache = sum(a.nbytes for a in (*k_parts, *v_parts))
    if tiled:
        run(f"{group} tiled", lambda: attend(q), cache)
        return
    run(f"{group} fused", lambda: attend(q), cache)
    run(
        f"{group} fallback",
        lambda: mx.vjp(attend, [q], [mx.zeros_like(q)])[0][0],
        cache,
    )
    run(f"{group} dequant+sdpa", dequantize_then_attend, cache)


def info():
    try:
        name = mx.device_info().get("device_name", "")
    except Exception:
        name = ""
    return dict(kind="info", mlx=mx.__version__, device_name=name)


def report(message):
    print(TAG + json.dumps(message), flush=True)


def run_child(length, dtype, group, args, emit):
    """Runs one group in a child process; a crash or a child that outlives
    --child-timeout becomes a note."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child"]
    cmd += ["--device", args.device, "--lengths", str(length), "--dtypes", dtype]
    cmd += ["--group", group, "--rounds", str(args.rounds), "--slow", str(args.slow)]
    cmd += ["--variants", *args.variants, "--together", str(args.together)]
    if ONLY:
        cmd += ["--only", *ONLY]
    env = dict(os.environ, **({TILED: "0"} if group.endswith(" tiled") else {}))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    timer = threading.Timer(args.child_timeout, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            if line.startswith(TAG):
                emit(json.loads(line[len(TAG) :]))
            else:
                print(line, end="", flush=True)
    finally:
        proc.wait()
        timed_out = not timer.is_alive()
        timer.cancel()
    if timed_out and proc.returncode != 0:
        args.hangs += 1
    if proc.returncode != 0:
        why = (
            f"killed after {args.child_timeout:.0f} s"
            if timed_out
            else f"exit status {proc.returncode}"
        )
        emit(
            dict(
                kind="note",
                text=f"L={length} {dtype} {group}: the process died ({why}); "
                "the rows it had not reported are missing.",
            )
        )


def milliseconds(seconds):
    return f"{seconds * 1e3:.2f}" if seconds < 0.1 else f"{seconds * 1e3:.0f}"


class Table:
    def __init__(self, args):
        self.args = args
        self.info = {}
        self.rows = []
        self.notes = []
        self.complete = False

    def add(self, message):
        kind = message["kind"]
        if kind == "info":
            self.info = message
        elif kind == "row":
            self.rows.append(message)
            what = (
                f"{message['seconds'] * 1e3:.2f} ms, {message['extra'] / MiB:.1f} MiB"
                if "seconds" in message
                else message["error"]
            )
            if "together" in message:
                what += f", {message['together'] * 1e3:.2f} ms together"
            print(
                f"  L={message['length']} {message['dtype']} {message['name']}: {what}",
                flush=True,
            )
        elif kind == "note" and message["text"] not in self.notes:
            self.notes.append(message["text"])
            print("  " + message["text"], flush=True)

    def render(self):
        a = self.args
        gpu = a.device == "gpu"
        cudnn = os.environ.get(CUDNN)
        machine = self.info.get("device_name") or (
            "CUDA GPU"
            if gpu
            else f"{platform.machine()} ({platform.processor() or 'cpu'})"
        )
        lines = [
            f"# Quantized SDPA prefill on {'a CUDA GPU' if gpu else 'the CPU'}: "
            "one 512-query chunk",
            "",
            f"Written by scripts/bench_prefill.py on {machine} with mlx "
            f"{self.info.get('mlx', mx.__version__)}.",
            f"B=1, {HEADS} query heads, {KV_HEADS} KV heads, head dim {DIM}, "
            f"{CHUNK} queries at the end of L keys, causal. Query dtype as given "
            "(the cache's floats and the output are in it too). extra MiB = peak "
            "of MLX's allocator during the call minus what was in use before it "
            "(output included); fp16 K/V = size of the unquantized float16 cache. "
            "Time: median wall time. x vs fallback: against the faster of the "
            "format's fallback rows; x vs sdpa: against the unquantized SDPA in the "
            "same dtype; graph: what MLX built for the call (qsdpa kernel, sdpa "
            "kernel or ops).",
        ]
        if a.together:
            lines.append(
                f"ms, {a.together} together: the median wall time of "
                f"{a.together} calls issued before one mx.eval, per call (as a "
                "model's layers issue them: MLX's host work for one call overlaps "
                "the GPU's for another); x vs sdpa, together: the same against "
                "the unquantized SDPA's."
            )
        if gpu:
            lines.append(
                "On the GPU: "
                + (f"{CUDNN}={cudnn}" if cudnn is not None else f"{CUDNN} unset")
                + " (MLX's SDPA takes 512 queries only through cuDNN: sdpa kernel "
                "means cuDNN, ops means the materialized scores); the caches were "
                "quantized on the GPU; dequant+sdpa = mx.dequantize of K and V, "
                "then mx.fast.scaled_dot_product_attention; fused = the call as "
                "MLX runs it (with cuDNN on: cuDNN over chunks of decoded keys and "
                f"values), tiled = the same call with {TILED}=0 (the tiled "
                "tensor-core kernel)."
            )
        together = f"ms, {a.together} together | x vs sdpa, together | "
        together = together if a.together else ""
        lines += [
            "",
            f"| L | dtype | path | ms | x vs fallback | x vs sdpa | {together}"
            "extra MiB | extra / fp16 K/V | cache MiB | graph |",
            "|---|---|---|---|---|---|---|---|---|---|"
            + ("---|---|" if a.together else ""),
        ]
        errors = []
        times = {
            (r["length"], r["dtype"], r["name"]): r["seconds"]
            for r in self.rows
            if "seconds" in r
        }
        times_together = {
            (r["length"], r["dtype"], r["name"]): r["together"]
            for r in self.rows
            if "together" in r
        }
        for r in self.rows:
            length, dtype, name = r["length"], r["dtype"], r["name"]
            if "seconds" not in r:
                errors.append(f"L={length} {dtype} {name}: {r['error'][:400]}")
                continue
            t, fp16_kv = r["seconds"], 2 * KV_HEADS * length * DIM * 2
            ms = milliseconds(t)
            vs_fallback = vs_sdpa = ""
            if name != SDPA:
                group = name.split()[0]
                fallbacks = [
                    times[key]
                    for key in [
                        (length, dtype, f"{group} {v}")
                        for v in ("fallback", "dequant+sdpa")
                    ]
                    if key in times
                ]
                if name.endswith("fused") and fallbacks:
                    vs_fallback = f"{min(fallbacks) / t:.2f}"
                if (length, dtype, SDPA) in times:
                    vs_sdpa = f"{times[(length, dtype, SDPA)] / t:.2f}"
            if a.together:
                t_sdpa = times_together.get((length, dtype, SDPA))
                t = r.get("together")
                vs = f"{t_sdpa / t:.2f}" if t and t_sdpa and name != SDPA else ""
                ms_together = milliseconds(t) if t else ""
                vs_sdpa += f" | {ms_together} | {vs}"
            lines.append(
                f"| {length} | {dtype} | {name} | {ms} | {vs_fallback} "
                f"| {vs_sdpa} | {r['extra'] / MiB:.1f} | {r['extra'] / fp16_kv:.3f} "
                f"| {r['cache'] / MiB:.1f} | {r['graph']} |"
            )
        notes = self.notes + [f"did not run: {e}" for e in errors]
        if notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
        if not self.complete:
            lines += ["", "(Partial: the run had not finished when this was written.)"]
        return "\n".join(lines) + "\n"

    def write(self):
        self.args.out.parent.mkdir(parents=True, exist_ok=True)
        self.args.out.write_text(self.render())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8192, 32768])
    parser.add_argument(
        "--dtypes",
        nargs="+",
        help="query dtypes (default: float32 float16 on the CPU, float16 on the GPU)",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slow", type=float, default=10.0)
    parser.add_argument(
        "--together",
        type=int,
        help="also time this many calls issued before one mx.eval "
        "(default: 10 on the GPU, 0 (not) on the CPU)",
    )
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only variants naming these"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="default: results/prefill_cpu.md, or results/prefill_cuda.md on the GPU",
    )
    parser.add_argument(
        "--isolate",
        action=argparse.BooleanOptionalAction,
        help="each group of rows in a child process (default: on the GPU)",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=["fused", "tiled", "fallback", "dequant+sdpa"],
        help="rows of each format (default: fused fallback, and tiled and "
        "dequant+sdpa on the GPU; tiled needs --isolate)",
    )
    parser.add_argument(
        "--child-timeout",
        type=float,
        default=150,
        help="seconds a child process may run before it is killed; after two "
        "such, the groups left are not run",
    )
    # Internal: the group a child process runs.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    args = parser.parse_args()
    gpu = args.device == "gpu"
    args.dtypes = args.dtypes or (["float16"] if gpu else ["float32", "float16"])
    args.variants = args.variants or (
        ["fused", "fallback"] + (["tiled", "dequant+sdpa"] if gpu else [])
    )
    if args.together is None:
        args.together = 10 if gpu else 0
    args.out = args.out or Path(f"results/prefill_{'cuda' if gpu else 'cpu'}.md")
    args.isolate = gpu if args.isolate is None else args.isolate
    if "tiled" in args.variants and not (gpu and args.isolate):
        parser.error("the tiled rows run on the GPU, each in a child process")
    args.hangs = 0  # children killed by the timeout
    ONLY[:] = args.only

    mx.set_default_device(mx.gpu if gpu else mx.cpu)
    if args.child:
        report(info())
        dtype = args.dtypes[0]
        bench(args.lengths[0], getattr(mx, dtype), args.group, args, report)
        return

    table = Table(args)
    if not args.isolate:
        table.add(info())
    for length in args.lengths:
        for dtype in args.dtypes:
            for group in groups_of(args.variants):
                if args.hangs >= 2:
                    table.add(
                        dict(
                            kind="note",
                            text=f"L={length} {dtype} {group}: not run, two "
                            "child processes hung already.",
                        )
                    )
                elif args.isolate:
                    run_child(length, dtype, group, args, table.add)
                else:
                    bench(length, getattr(mx, dtype), group, args, table.add)
                table.write()
    table.complete = True
    text = table.render()
    print(text)
    table.write()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
