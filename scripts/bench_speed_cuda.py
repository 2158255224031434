#!/usr/bin/env python3
"""Decode speed of quantized attention on a CUDA GPU, side by side in one run.

One float16 query a sequence, 32 query heads sharing 8 KV heads, head
dimension 128, at B=1 and at B=8r: 8 sequences, each with its own length
(from L/8 to L keys), left-padded to L and masked per sequence as mlx-lm's
batch cache lays them out (--batches 8: 8 sequences of L keys). In one run
it times:

- float16 attention: MLX's mx.fast.scaled_dot_product_attention with its
  cuDNN path on (MLX's default) and off (MLX_CUDA_USE_CUDNN_SDPA=0: MLX's own
  vector kernel), and PyTorch's torch.nn.functional.scaled_dot_product_attention
  with enable_gqa=True (its default dispatch and each backend it can be forced
  to), when torch is importable;
- mx.fast.quantized_scaled_dot_product_attention with turbo3, turbo4, affine
  4- and 8-bit and K8V4 (8-bit affine keys, turbo4 values) caches, through the
  fused kernel and (for two formats) through the fallback, reached under
  mx.vjp;
- the copy bandwidth of the card (`x * 1` over 1 GiB).

Every row is timed the same way: the median over rounds of the wall time of
a batch of calls issued together and waited for, divided by the number of
calls, so launch overheads are amortized. The calls of a batch are
independent, so MLX's CUDA graph may run their kernels at once. With
--timing chained each call's query is the output of the call before it, so
they run one after another, as a model's layers do (for MLX and torch
alike). With --timing pipelined each MLX call goes to mx.async_eval as it
is made, so that its graph runs while the next call is encoded, as mlx-lm's
generation overlaps its steps (torch's calls run as they are made anyway).
GB/s counts the K/V bytes (scales and biases included) that a call must
read. Speed-ups are against the
fastest float16 row of the same length and batch.

Each group of rows runs in a process of its own: MLX reads
MLX_CUDA_USE_CUDNN_SDPA once per process, torch and MLX abort when imported
into one process on the device, and a crash (cuDNN's SDPA crashed on one
machine) then costs only the case it happened in: the process is started
again for the remaining cases and the table says what crashed. The
quantized rows run under the MLX_CUDA_USE_CUDNN_SDPA this script was started
with (the fallback rows attend through MLX's SDPA). The table is written
after each group, so an interrupted run leaves what it measured.

    bench_speed_cuda.py [--lengths 4096 32768 131072] [--batches 1 8r]
                        [--out results/speed_cuda.md] [--device gpu|cpu]
                        [--timing together|chained|pipelined]

--device cpu runs everything on the CPU (to try the script without a GPU).
"""

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

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
CUDNN = "MLX_CUDA_USE_CUDNN_SDPA"
TORCH_BACKENDS = ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION")
# What the table's notes add about the calls of a batch, for each --timing.
TIMING_NOTES = {
    "together": "",
    "chained": ", each call's query the output of the one before",
    "pipelined": ", each MLX call handed to mx.async_eval as it was made",
}
# Lines of a child's standard output that carry results start with this.
TAG = "@bench "


def median_per_call(batch, calls=CALLS, rounds=7):
    """Median over rounds of the seconds per call of batch(), which issues
    `calls` calls and returns once all are done; one batch warms up."""
    batch()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        batch()
        times.append((time.perf_counter() - t) / calls)
    return statistics.median(times)


def seconds_per_call(fn, rounds=7, calls=CALLS):
    """Seconds per call of an MLX function, `calls` calls issued before one
    mx.eval (bench_quantize_cuda.py and bench_prefill.py use it)."""
    import mlx.core as mx

    return median_per_call(lambda: mx.eval([fn() for _ in range(calls)]), calls, rounds)


def chained_seconds_per_call(step, q, rounds=7, calls=CALLS):
    """Seconds per call of step (an MLX function of a query that returns an
    output of the query's shape), `calls` calls each of whose query is the
    output of the call before, then one mx.eval."""
    import mlx.core as mx

    def batch():
        out = q
        for _ in range(calls):
            out = step(out)
        mx.eval(out)

    return median_per_call(batch, calls, rounds)


def pipelined_seconds_per_call(fn, rounds=7, calls=CALLS):
    """Seconds per call of an MLX function, each of `calls` calls handed to
    mx.async_eval as it is made (so the GPU runs it while the next is
    encoded, as mlx-lm's generation overlaps its steps), then one mx.eval."""
    import mlx.core as mx

    def batch():
        outs = []
        for _ in range(calls):
            outs.append(fn())
            mx.async_eval(outs[-1])
        mx.eval(outs)

    return median_per_call(batch, calls, rounds)


def copy_bandwidth(size=256 * 2**20):
    """Bytes read and written per second by `x * 1` over `size` float32s."""
    import mlx.core as mx

    x = mx.random.uniform(shape=(size,))
    mx.eval(x)
    return 2 * x.nbytes / seconds_per_call(lambda: x * 1)


def graph_of(out):
    """What computes `out`: the fused kernel, MLX's SDPA primitive or ops."""
    import io
    import re

    import mlx.core as mx

    try:
        dot = io.StringIO()
        mx.export_to_dot(dot, out)
        labels = set(re.findall(r'label ="(\w+)"', dot.getvalue()))
    except Exception as e:  # only a label for the table
        return f"? ({type(e).__name__})"
    if "QuantizedScaledDotProductAttention" in labels:
        return "qsdpa kernel"
    if "ScaledDotProductAttention" in labels:
        return "sdpa kernel"
    return "ops"


def sequences(spec, length):
    """A --batches entry: the number of sequences and, for 'Nr', their
    lengths (from length / N to length keys, evenly), else None."""
    n = int(spec.rstrip("r"))
    if not spec.endswith("r"):
        return n, None
    return n, [length * (i + 1) // n for i in range(n)]


def report(kind, **fields):
    print(TAG + json.dumps(dict(kind=kind, **fields)), flush=True)


def each_case(args):
    """The child's cases, each announced before and after it runs."""
    for length, batch in args.cases:
        report("case", length=length, batch=batch)
        yield length, batch
        report("done")


def report_row(case, name, seconds, read, f16, graph="", error=None):
    length, batch = case
    report(
        "row",
        length=length,
        batch=batch,
        name=name,
        seconds=seconds,
        read=read,
        f16=f16,
        graph=graph,
        error=error,
    )


def mlx_row(case, name, step, q, read, f16, timing, rounds=7):
    """Times step (an MLX function of the query q) and reports it, its calls
    issued as `timing` says (--timing); an exception becomes a note."""
    try:
        graph = graph_of(step(q))
        if timing == "chained":
            seconds = chained_seconds_per_call(step, q, rounds)
        elif timing == "pipelined":
            seconds = pipelined_seconds_per_call(lambda: step(q), rounds)
        else:
            seconds = seconds_per_call(lambda: step(q), rounds)
    except Exception as e:
        report_row(case, name, None, read, f16, error=f"{type(e).__name__}: {e}")
        return
    report_row(case, name, seconds, read, f16, graph)


def child_copy(args):
    import mlx.core as mx

    try:
        name = mx.device_info().get("device_name", "")
    except Exception:
        name = ""
    report(
        "info",
        mlx=mx.__version__,
        device_name=name or ("CUDA GPU" if args.device == "gpu" else "CPU"),
    )
    # 1 GiB on the GPU; 16 MiB for a trial on the CPU.
    report("copy", copy=copy_bandwidth(2**22 if args.device == "cpu" else 2**28))


def mlx_mask(lengths, length):
    import mlx.core as mx

    if lengths is None:
        return None
    starts = mx.array([length - n for n in lengths]).reshape(-1, 1, 1, 1)
    keep = mx.arange(length).reshape(1, 1, 1, -1) >= starts
    mx.eval(keep)
    return keep


def child_f16(args):
    """MLX's float16 SDPA under the MLX_CUDA_USE_CUDNN_SDPA it was given."""
    import mlx.core as mx

    label = "on" if os.environ.get(CUDNN, "1") != "0" else "off"
    for case in each_case(args):
        length, spec = case
        batch, lengths = sequences(spec, length)
        mx.random.seed(0)
        q = mx.random.normal((batch, HEADS, 1, DIM)).astype(mx.float16)
        k = mx.random.normal((batch, KV_HEADS, length, DIM)).astype(mx.float16)
        v = mx.random.normal((batch, KV_HEADS, length, DIM)).astype(mx.float16)
        keep = mlx_mask(lengths, length)
        mx.eval(q, k, v)
        mlx_row(
            case,
            f"MLX f16 sdpa, cuDNN {label}",
            lambda q: mx.fast.scaled_dot_product_attention(
                q, k, v, scale=DIM**-0.5, mask=keep
            ),
            q,
            k.nbytes + v.nbytes,
            True,
            args.timing,
        )
        del q, k, v
        mx.clear_cache()


def child_quantized(args):
    """The quantized rows. Each format quantizes one sequence's cache on the
    device the rows run on, as mlx-lm's caches are quantized, and repeats it
    for every sequence of the batch. (Until 2026-12-07 they were quantized
    on the CPU, into the managed memory MLX gives an array made there;
    scripts/cuda/mlx_overhead.py found no consistent difference on an
    H100.)"""
    import mlx.core as mx

    scale = DIM**-0.5
    packed, packed_length = {}, None
    for case in each_case(args):
        length, spec = case
        batch, lengths = sequences(spec, length)
        keep = mlx_mask(lengths, length)
        if packed_length != length:
            packed.clear()
            mx.clear_cache()
            mx.random.seed(0)
            k = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
            v = mx.random.normal((1, KV_HEADS, length, DIM)).astype(mx.float16)
            mx.eval(k, v)
            for name, (kf, vf) in FORMATS.items():
                kp = mx.quantize(k, **kf)
                vp = mx.quantize(v, **vf)
                mx.eval(kp, vp)
                packed[name] = (kp, vp)
            del k, v
            packed_length = length
        q = mx.random.normal((batch, HEADS, 1, DIM)).astype(mx.float16)
        mx.eval(q)
        for name, (kf, vf) in FORMATS.items():
            kp, vp = (
                [mx.repeat(a, batch, axis=0) if batch > 1 else a for a in parts]
                for parts in packed[name]
            )
            mx.eval(kp, vp)
            kwargs = dict(scale=scale, **kf)
            kwargs.update({f"v_{key}": value for key, value in vf.items()})
            if kf["mode"] == "affine":
                kwargs["k_biases"] = kp[2]
            if vf["mode"] == "affine":
                kwargs["v_biases"] = vp[2]

            def attend(q, kp=kp, vp=vp, kwargs=kwargs):
                return mx.fast.quantized_scaled_dot_product_attention(
                    q, kp[0], kp[1], vp[0], vp[1], mask=keep, **kwargs
                )

            read = sum(a.nbytes for a in (*kp, *vp))
            mlx_row(case, f"{name} fused", attend, q, read, False, args.timing)
            if name in FALLBACKS:
                mlx_row(
                    case,
                    f"{name} fallback",
                    lambda q: mx.vjp(attend, [q], [mx.zeros_like(q)])[0][0],
                    q,
                    read,
                    False,
                    args.timing,
                    rounds=3,
                )
            del kp, vp, attend
        del q


def child_torch(args):
    """PyTorch's float16 SDPA with enable_gqa=True: its default dispatch, then
    each backend forced in turn (those that cannot run the shape say why)."""
    import torch
    import torch.nn.functional as F

    cuda = args.device == "gpu"
    device = "cuda" if cuda else "cpu"
    if cuda and not torch.cuda.is_available():
        report("note", text=f"torch {torch.__version__}: CUDA not available")
        return
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        sdpa_kernel = None
    report(
        "note",
        text=f"torch {torch.__version__}"
        + (f" on {torch.cuda.get_device_name()}" if cuda else " on the CPU"),
    )
    variants = [("torch f16 sdpa", None)]
    if sdpa_kernel is not None:
        variants += [
            (f"torch f16 sdpa [{b.split('_')[0].lower()}]", getattr(SDPBackend, b))
            for b in TORCH_BACKENDS
            if hasattr(SDPBackend, b)
        ]
    for case in each_case(args):
        length, spec = case
        batch, lengths = sequences(spec, length)
        torch.manual_seed(0)
        kw = dict(dtype=torch.float16, device=device)
        q = torch.randn(batch, HEADS, 1, DIM, **kw)
        k = torch.randn(batch, KV_HEADS, length, DIM, **kw)
        v = torch.randn(batch, KV_HEADS, length, DIM, **kw)
        keep = None
        if lengths is not None:
            starts = torch.tensor([length - n for n in lengths], device=device)
            keep = torch.arange(length, device=device) >= starts.view(-1, 1, 1, 1)
        read = 2 * k.numel() * k.element_size()

        def call(q):
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=keep, scale=DIM**-0.5, enable_gqa=True
            )

        def batch_of_calls():
            if args.timing == "chained":
                out = q
                for _ in range(CALLS):
                    out = call(out)
                outs = [out]
            else:
                outs = [call(q) for _ in range(CALLS)]
            sync()
            return outs

        for name, backend in variants:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    if backend is None:
                        seconds = median_per_call(batch_of_calls)
                    else:
                        with sdpa_kernel(backend):
                            seconds = median_per_call(batch_of_calls)
                except Exception as e:
                    why = " ".join(str(w.message) for w in caught)
                    error = f"{type(e).__name__}: {e}" + (f" ({why})" if why else "")
                    report_row(case, name, None, read, True, error=error)
                    continue
            report_row(case, name, seconds, read, True, "torch")
        del q, k, v
        if cuda:
            torch.cuda.empty_cache()


def run_child(kind, cases, args, env=None, on_message=None):
    """Runs `kind` over `cases` in child processes and passes each reported
    message to on_message. A child that dies loses the case it was in (the
    table says so) and the next child starts at the case after it; one that
    spends more than --child-timeout on a case is killed, and the kind's
    remaining cases are left out."""
    remaining = list(cases)
    while remaining:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind]
        cmd += ["--device", args.device, "--timing", args.timing]
        cmd += ["--cases"]
        cmd += [f"{length}:{batch}" for length, batch in remaining]
        child_env = dict(os.environ, **(env or {}))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env)
        # A watchdog kills the child when one case (or its start) outlasts
        # --child-timeout.
        deadline, killed = [time.monotonic() + args.child_timeout], []

        def watch(proc=proc, deadline=deadline, killed=killed):
            while proc.poll() is None:
                if time.monotonic() > deadline[0]:
                    killed.append(True)
                    proc.kill()
                    return
                time.sleep(0.5)

        threading.Thread(target=watch, daemon=True).start()
        current, started = None, False
        try:
            for line in proc.stdout:
                if not line.startswith(TAG):
                    print(line, end="", flush=True)
                    continue
                message = json.loads(line[len(TAG) :])
                if message["kind"] == "case":
                    current = (message["length"], message["batch"])
                    started = True
                    deadline[0] = time.monotonic() + args.child_timeout
                    if current in remaining:
                        remaining = remaining[remaining.index(current) + 1 :]
                elif message["kind"] == "done":
                    current = None
                else:
                    on_message(message)
        finally:
            proc.wait()
        if proc.returncode == 0:
            return
        why = (
            f"killed after {args.child_timeout:.0f} s"
            if killed
            else f"exit status {proc.returncode}"
        )
        if not started:
            # Died before its first case (import, device): no use retrying.
            on_message(dict(kind="note", text=f"{kind} process: {why} before a case"))
            return
        if current is None:
            # Between two cases or at exit: nothing measured is lost.
            on_message(dict(kind="note", text=f"{kind} process: {why} between cases"))
            continue
        on_message(dict(kind="crash", what=kind, why=why, case=list(current)))
        if killed and remaining:
            # A hang is likely to repeat: leave the rest to a later run.
            left = ", ".join(f"L={n} B={b}" for n, b in remaining)
            on_message(dict(kind="note", text=f"{kind} not run after the hang: {left}"))
            return


class Table:
    def __init__(self, args):
        self.args = args
        self.info = {}
        self.rows = {}  # (length, batch) -> list of row messages
        self.notes = []
        self.complete = False

    def add(self, message):
        kind = message["kind"]
        if kind in ("info", "copy"):
            self.info.update(message)
        elif kind == "row":
            case = (message["length"], message["batch"])
            self.rows.setdefault(case, []).append(message)
            line = f"  L={case[0]} B={case[1]} {message['name']}: " + (
                f"{message['seconds'] * 1e6:.1f} us"
                if message["seconds"] is not None
                else message["error"]
            )
            print(line, flush=True)
        elif kind == "crash":
            length, batch = message["case"]
            text = (
                f"The {message['what']} process died at L={length}, B={batch} "
                f"({message['why']}): the rows it had not reported for that case "
                "are missing."
            )
            self.notes.append(text)
            print("  " + text, flush=True)
        elif kind == "note" and message["text"] not in self.notes:
            self.notes.append(message["text"])
            print("  " + message["text"], flush=True)

    def render(self):
        a = self.args
        copy = self.info.get("copy")
        name = self.info.get("device_name", "?")
        cudnn = os.environ.get(CUDNN)
        lines = [
            "# Quantized SDPA decode on a CUDA GPU",
            "",
            f"Written by scripts/bench_speed_cuda.py on {name} with mlx "
            f"{self.info.get('mlx', '?')}"
            + ("" if a.device == "gpu" else " (--device cpu: a trial, not a result)")
            + ".",
            f"{HEADS} query heads, {KV_HEADS} KV heads, head dim {DIM}, one float16 "
            "query a sequence; B > 1 is that many sequences of L keys, Br that many "
            "of their own lengths (L/B to L keys, left-padded to L and masked per "
            "sequence; every row reads the padded cache). The quantized rows repeat "
            "one sequence's packed cache B times. Median time per call "
            f"over rounds of {CALLS} calls issued together"
            + TIMING_NOTES[a.timing]
            + " (wall clock, the same for MLX and torch); x = speed-up over the "
            "fastest float16 row of the same L and B (marked *); GB/s = K/V bytes read per second. "
            + (
                f"Copy bandwidth of the card in the same run: {copy / 1e9:.0f} GB/s "
                "(read + write)."
                if copy
                else "Copy bandwidth: not measured."
            ),
            f"MLX f16 sdpa: cuDNN on is MLX's default ({CUDNN} unset; its decode "
            "path takes K/V of at least 256 keys, a multiple of 256); cuDNN off is "
            f"{CUDNN}=0, MLX's vector kernel. The quantized rows ran with "
            + (f"{CUDNN}={cudnn}" if cudnn is not None else f"{CUDNN} unset")
            + "; graph = what MLX built for the call (qsdpa kernel, sdpa kernel or "
            "ops).",
            "",
            "| L | B | kernel | us | x vs fastest f16 | GB/s | of copy | graph |",
            "|---|---|---|---|---|---|---|---|",
        ]
        fastest_lines, errors = [], {}
        for case in [(n, b) for n in a.lengths for b in a.batches]:
            rows = self.rows.get(case, [])
            timed = [r for r in rows if r["seconds"] is not None]
            f16 = [r for r in timed if r["f16"]]
            base = min(f16, key=lambda r: r["seconds"]) if f16 else None
            if base:
                fastest_lines.append(
                    f"- L={case[0]}, B={case[1]}: {base['name']}, "
                    f"{base['seconds'] * 1e6:.1f} us"
                )
            for r in rows:
                if r["seconds"] is None:
                    errors.setdefault((r["name"], r["error"]), []).append(case)
                    continue
                t = r["seconds"]
                x = f"{base['seconds'] / t:.2f}" if base else ""
                if r is base:
                    x += " *"
                gbs = r["read"] / t / 1e9
                of_copy = f"{100 * r['read'] / t / copy:.0f}%" if copy else ""
                lines.append(
                    f"| {case[0]} | {case[1]} | {r['name']} | {t * 1e6:.1f} | {x} "
                    f"| {gbs:.0f} | {of_copy} | {r['graph']} |"
                )
        lines += ["", "Fastest float16 decode (the base of x):", ""]
        lines += fastest_lines or ["- none measured"]
        notes = list(self.notes)
        for (row, error), cases in errors.items():
            where = ", ".join(f"L={n} B={b}" for n, b in cases)
            notes.append(f"{row} did not run ({where}): {error[:400]}")
        if notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
        if not self.complete:
            lines += ["", "(Partial: the run had not finished when this was written.)"]
        return "\n".join(lines) + "\n"

    def write(self):
        if self.args.out:
            self.args.out.parent.mkdir(parents=True, exist_ok=True)
            self.args.out.write_text(self.render())


def batch_spec(text):
    if not re.fullmatch(r"[1-9][0-9]*r?", text):
        raise argparse.ArgumentTypeError(f"{text!r}: N or Nr")
    return text


def parse_case(text):
    length, batch = text.split(":")
    return int(length), batch_spec(batch)


CLOCK_FIELDS = (
    "clocks.sm,clocks.max.sm,power.draw,power.limit,clocks_throttle_reasons.active"
)


def clock_note(csv):
    """The note on the GPU's clocks from nvidia-smi's CSV (CLOCK_FIELDS,
    noheader): two machines of one kind ran the same kernels 20% apart
    (2026-12-07), so a table says what the card ran at."""
    sm, max_sm, draw, limit, reasons = [
        f.strip() for f in csv.splitlines()[0].split(",")
    ]
    return (
        f"GPU after the runs: SM clock {sm} (at most {max_sm}), power {draw} "
        f"of {limit}, clock throttle reasons {reasons}."
    )


def gpu_clocks():
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={CLOCK_FIELDS}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return clock_note(out)
    except (OSError, subprocess.SubprocessError, ValueError) as e:
        return f"GPU clocks not read: {e}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 32768, 131072])
    parser.add_argument(
        "--batches",
        type=batch_spec,
        nargs="+",
        default=["1", "8r"],
        help="N sequences of L keys, or Nr of their own lengths (L/N to L)",
    )
    parser.add_argument("--out", type=Path, default=Path("results/speed_cuda.md"))
    parser.add_argument("--device", choices=["gpu", "cpu"], default="gpu")
    parser.add_argument(
        "--child-timeout",
        type=float,
        default=150,
        help="seconds a child process may spend on one case before it is killed",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave torch out")
    parser.add_argument(
        "--timing",
        choices=sorted(TIMING_NOTES),
        default="together",
        help="how a batch's calls are issued: independent (together), each "
        "call's query the output of the call before (chained), or each MLX call "
        "handed to mx.async_eval as it is made (pipelined)",
    )
    # Internal: what a child process runs.
    parser.add_argument(
        "--child", choices=["copy", "f16", "quantized", "torch"], help=argparse.SUPPRESS
    )
    parser.add_argument("--cases", type=parse_case, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "torch":
        child_torch(args)  # before anything imports MLX into this process
        return
    if args.child:
        import mlx.core as mx

        mx.set_default_device(mx.gpu if args.device == "gpu" else mx.cpu)
        dict(copy=child_copy, f16=child_f16, quantized=child_quantized)[args.child](
            args
        )
        return

    table = Table(args)
    cases = [(n, b) for n in args.lengths for b in args.batches]
    runs = [
        ("copy", [cases[0]], {}),
        ("f16", cases, {CUDNN: "1"}),
        ("f16", cases, {CUDNN: "0"}),
    ]
    if args.no_torch:
        table.notes.append("torch left out (--no-torch).")
    elif importlib.util.find_spec("torch") is None:
        table.notes.append("torch is not importable here: no torch rows.")
    else:
        runs.append(("torch", cases, {}))
    runs.append(("quantized", cases, {}))
    for kind, kind_cases, env in runs:
        print(f"{kind} {env or ''}".strip(), flush=True)
        run_child(kind, kind_cases, args, env, table.add)
        table.write()
    if args.device == "gpu":
        table.notes.append(gpu_clocks())
    table.complete = True
    text = table.render()
    print(text)
    table.write()
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
