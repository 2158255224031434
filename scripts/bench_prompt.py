#!/usr/bin/env python3
"""A long prompt end to end through mlx-lm on the CPU: peak memory and prompt
tokens per second with the float16 KV cache against the quantized ones.

For every prompt length and cache it runs mlx-lm's own `generate_step` (the
loop behind `mlx_lm.generate`): the prompt is processed in chunks of
--prefill-step-size tokens (mlx-lm's default 2048), the cache's state is
evaluated and MLX's buffer cache cleared after each chunk, then --generate
tokens are decoded greedily. The caches are the ones `mlx_lm.generate` builds
with the options of scripts/bench_model.py's CACHES (float16: none; turbo4:
--kv-mode turbo4; affine4: --kv-bits 4, not run by default: its attention,
mlx-lm's quantized matmuls, runs 3-5x slower than float16's on the CPU),
quantized from the first token.

The prompt is --text (by default scripts/data/model_text.txt, prose written
for this project) tokenized once and repeated, token for token, to the
length asked; a repetition is a prompt the model can continue exactly, so the
decoded tokens are checked against the next tokens of the repetition and
against the float16 cache's. SmolLM2-135M was trained with 8192 positions
(max_position_embeddings); longer prompts run past it, which is fine for
memory and speed but not for the continuation.

Per run: the peak of MLX's allocator (mx.get_peak_memory after
mx.reset_peak_memory, with the model loaded and nothing else alive), the
same minus the memory in use before the run (the model's weights), the
cache's own arrays at the end of the prompt (mlx-lm's nbytes: its buffers,
which grow 256 tokens at a time), prompt tokens per second (prompt length
over the wall time from the start to the first generated token, as
mlx_lm.generate reports it) and decoding tokens per second. Every cache
first runs a short warm-up prompt. The model runs in float32 (--dtype; MLX's
CPU float16 matmuls are about 10x slower) and hands the caches its keys and
values in float16, as in bench_model.py, so "float16" is a float16 cache.

On 2 cores the float16 cache takes minutes at 8192 tokens and much longer
at 16384 (its attention is quadratic and unfused); --lengths 1024 2048 runs
in a few minutes.

    bench_prompt.py [--lengths 2048 8192 16384] [--caches float16 turbo4 ...]
                    [--prefill-step-size 2048] [--generate 8] [--repeat 1]
                    [--dtype float32] [--out results/prompt_cpu.md]
"""

import argparse
import gc
import os
import platform
import statistics
import sys
import textwrap
import time
from pathlib import Path

import mlx.core as mx
from mlx.utils import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gguf_models  # noqa: E402
from bench_model import CACHES, TEXT, bytes_per_token, flags, make_cache  # noqa: E402
from mlx_lm.generate import generate_step  # noqa: E402

REFERENCE = "float16"
MiB = 2**20


def prompt_tokens(tokenizer, text, length):
    """The text's tokens repeated (a blank line between the copies) to
    `length` tokens or more."""
    ids = tokenizer.encode(text.read_text().strip(), add_special_tokens=False)
    separator = tokenizer.encode("\n\n", add_special_tokens=False)
    once = ids + separator
    return once * (length // len(once) + 1), len(once)


def run(model, name, ids, length, step, generate):
    """One prompt of `length` tokens with a fresh cache, through mlx-lm's
    generate_step: a dict of figures and the generated tokens."""
    gc.collect()
    mx.synchronize()
    mx.clear_cache()
    cache = make_cache(model, name)
    mx.reset_peak_memory()
    before = mx.get_active_memory()
    tic = time.perf_counter()
    tokens, times = [], []
    steps = generate_step(
        mx.array(ids[:length]),
        model,
        max_tokens=generate,
        prompt_cache=cache,
        prefill_step_size=step,
    )
    for token, _ in steps:
        times.append(time.perf_counter())
        tokens.append(token)
    mx.synchronize()
    peak = mx.get_peak_memory()
    # The prompt's tokens in the cache (its buffers round up to 256 tokens)
    means = [getattr(c, "key_mean", None) for c in cache]
    prompt_bytes = bytes_per_token(cache) * length
    prompt_bytes += sum(m.nbytes for m in means if m is not None)
    row = {
        "peak": peak,
        "over_start": peak - before,
        "cache_bytes": prompt_bytes,
        "prompt_s": times[0] - tic,
        "gen_s": (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 0,
    }
    del cache, steps
    return row, tokens


def agreement(tokens, expected):
    """How many of the first tokens are the expected ones."""
    n = 0
    for a, b in zip(tokens, expected):
        if a != b:
            break
        n += 1
    return n


def continuation(row, generate):
    """ "3/8, 3 as float16": how the decoded tokens agree with the repetition
    (when known) and with the float16 cache's."""
    parts = [] if row["repeats"] is None else [f"{row['repeats']}/{generate}"]
    if row["same"] is not None:
        parts.append(f"{row['same']} as float16")
    return ", ".join(parts)


def measure(model, caches, ids, period, args):
    """{(length, cache): row}; the cache runs of one length side by side."""
    for name in caches:
        run(model, name, ids, args.warmup, args.prefill_step_size, 2)
    rows = {}
    for length in args.lengths:
        expected = ids[length : length + args.generate]
        for name in caches:
            runs = []
            for _ in range(args.repeat):
                runs.append(
                    run(model, name, ids, length, args.prefill_step_size, args.generate)
                )
            row = dict(runs[0][0])
            row["prompt_s"] = statistics.median(r["prompt_s"] for r, _ in runs)
            row["gen_s"] = statistics.median(r["gen_s"] for r, _ in runs)
            row["peak"] = max(r["peak"] for r, _ in runs)
            row["over_start"] = max(r["over_start"] for r, _ in runs)
            row["tokens"] = runs[0][1]
            # The continuation is known once the prompt holds a whole copy
            row["repeats"] = None
            if length >= period:
                row["repeats"] = agreement(row["tokens"], expected)
            ref = rows.get((length, REFERENCE))
            row["same"] = agreement(row["tokens"], ref["tokens"]) if ref else None
            rows[(length, name)] = row
            print(
                f"{length:6d} {name:9s} peak {row['peak'] / MiB:8.1f} MiB "
                f"(+{row['over_start'] / MiB:7.1f})  cache "
                f"{row['cache_bytes'] / MiB:6.1f} MiB  "
                f"{length / row['prompt_s']:7.1f} prompt tok/s  "
                f"continuation: {continuation(row, args.generate) or '-'}  "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    return rows


def write_markdown(path, rows, args, info):
    load_before, load_after = info["load"]
    paragraphs = [
        f"Written by scripts/bench_prompt.py on {platform.machine()} "
        f"({os.cpu_count()} cores; load average "
        f"{', '.join(f'{x:.1f}' for x in load_before)} before the runs, "
        f"{', '.join(f'{x:.1f}' for x in load_after)} after) with mlx "
        f"{mx.__version__} on the CPU. {info['model']}, loaded through "
        f"mlx_lm.load in {args.dtype} ({info['weights'] / MiB:.0f} MiB of "
        "weights); the caches are handed float16 keys and values.",
        "Each row runs mlx-lm's generate_step over a prompt of the given "
        f"length: chunks of {args.prefill_step_size} tokens, the cache's "
        "state evaluated and mx.clear_cache() after each, then "
        f"{args.generate} greedily decoded tokens. The cache is the one "
        "mlx_lm.generate builds with the options shown, quantized from the "
        "first token. The prompt: the tokens of "
        f"{args.text.name} repeated (a blank line between the copies).",
        "peak MiB: mx.get_peak_memory() over the whole run (reset just "
        "before it, with only the model alive), weights included; over "
        "weights: the same minus the memory in use at the start. It counts "
        "MLX's allocator only: the fused quantized SDPA kernel's own "
        "per-thread buffers (a few hundred KiB) are not in it. cache MiB: "
        "the cache's arrays for the prompt's tokens, scales and key means "
        "included (mlx-lm's buffers round up to 256 tokens). prompt "
        "tok/s: the prompt length over "
        "the wall time to the first generated token, as mlx_lm.generate "
        f"reports it; median of {args.repeat} run(s) after a "
        f"{args.warmup}-token warm-up per cache. continuation: of the "
        f"{args.generate} decoded tokens, how many continue the repetition "
        "(prompts that hold a whole copy of the text, "
        f"{info['period']} tokens, only) and how many agree with the float16 "
        "cache's, before the first difference.",
        "Caveats: on the CPU, mx.fast.scaled_dot_product_attention has no "
        "fused kernel, so the float16 cache's attention materializes every "
        "score of a chunk (heads x chunk x keys, in float32) and affine4's "
        "mlx-lm path (quantized matmuls) does too; turbo4 runs the fused "
        "tiled quantized SDPA kernel, which does not. The peak gap is "
        "therefore larger here than on a GPU with fused SDPA. "
        f"The model was trained with {info['context']} positions: longer "
        "prompts run past its context (fine for memory and speed, not for "
        "the continuation). Times vary with the machine's load; the "
        "memory figures do not.",
    ]
    command = " ".join(["scripts/bench_prompt.py", *sys.argv[1:]])
    lines = ["# A long prompt end to end on the CPU", "", f"    {command}", ""]
    for p in paragraphs:
        lines += [textwrap.fill(p, width=72), ""]
    lines += [
        "| prompt tokens | cache | mlx_lm options | peak MiB | vs float16 "
        "| over weights MiB | vs float16 | cache MiB | prompt tok/s "
        "| vs float16 | decode tok/s | continuation |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (length, name), r in rows.items():
        ref = rows[(length, REFERENCE)]
        tps = length / r["prompt_s"]
        gen = f"{1 / r['gen_s']:.1f}" if r["gen_s"] else ""
        lines.append(
            f"| {length} | {name} | {flags(name)} | {r['peak'] / MiB:.1f} "
            f"| {r['peak'] / ref['peak']:.2f}x | {r['over_start'] / MiB:.1f} "
            f"| {r['over_start'] / ref['over_start']:.2f}x "
            f"| {r['cache_bytes'] / MiB:.1f} | {tps:.1f} "
            f"| {ref['prompt_s'] / r['prompt_s']:.2f}x | {gen} "
            f"| {continuation(r, args.generate)} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    gguf_models.add_model_argument(parser)
    parser.add_argument("--text", type=Path, default=TEXT)
    parser.add_argument("--lengths", type=int, nargs="+", default=[2048, 8192, 16384])
    parser.add_argument(
        "--caches",
        nargs="+",
        default=["float16", "turbo4"],
        help=f"from {', '.join(c for c in CACHES if c != 'float32')} (affine4, "
        "mlx-lm's quantized matmuls, is 3-5x slower than float16 on the CPU)",
    )
    parser.add_argument("--prefill-step-size", type=int, default=2048)
    parser.add_argument("--generate", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=512)
    parser.add_argument(
        "--dtype", choices=["float32", "float16", "bfloat16"], default="float32"
    )
    parser.add_argument("--out", type=Path, default=Path("results/prompt_cpu.md"))
    args = parser.parse_args()
    caches = [REFERENCE] + [c for c in args.caches if c != REFERENCE]
    for name in caches:
        if name not in CACHES or name == "float32":
            parser.error(f"unknown cache {name!r}")
    if args.generate < 1:
        parser.error("--generate must be at least 1")

    mx.set_default_device(mx.cpu)
    model, tokenizer = gguf_models.load(args.model)
    if args.dtype != "float32":
        model.set_dtype(getattr(mx, args.dtype))
    mx.eval(model.parameters())
    ids, period = prompt_tokens(tokenizer, args.text, max(args.lengths) + args.generate)
    info = {
        "model": f"{args.model} ({model.args.model_type}, "
        f"{len(model.layers)} layers, {model.args.num_key_value_heads} KV heads)",
        "context": getattr(model.args, "max_position_embeddings", "?"),
        "weights": sum(v.nbytes for _, v in tree_flatten(model.parameters())),
        "load": [os.getloadavg()],
        "period": period,
    }
    print(f"mlx {mx.__version__}, load average {os.getloadavg()}", flush=True)
    rows = measure(model, caches, ids, period, args)
    info["load"].append(os.getloadavg())
    write_markdown(args.out, rows, args, info)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
