#!/usr/bin/env python3
"""A long prompt end to end on a CUDA GPU through mlx-lm's model and caches:
prompt tokens per second and peak memory with the float16 KV cache against
the turbo4 one (mlx_lm.generate's --kv-mode turbo4).

The device has no model weights and no transformers (which mlx_lm.generate
imports), so the model is mlx-lm's llama with Llama 3 8B's shapes (32
layers, 32 query and 8 KV heads of 128, hidden 4096, MLP 14336) and random
float16 weights, and the prompt is processed as generate_step processes it:
chunks of --step tokens, the caches' state evaluated and MLX's buffer cache
cleared after each, then the logits of the last token. The weights change
neither the time nor the memory; nothing here measures quality (see
results/quality.md and bench_prompt.py on the CPU).

Each length runs twice per cache, in a fresh cache each time: the first run
builds what MLX caches across calls of the same shapes (cuDNN's graphs
above all: about 35-50 ms per new shape of keys, which for the float16 cache
is every chunk), the second finds them built, as a server's next prompt of
the same length would.

    prompt_gpu.py [--lengths 32768] [--step 512 2048] [--layers 32]
                  [--out results/prompt_cuda.md]
"""

import argparse
import gc
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# As mlx_lm_tests.py: mlx_lm's __init__ imports what is not on the device.
package = types.ModuleType("mlx_lm")
package.__path__ = [str(ROOT / "mlx-lm" / "mlx_lm")]
sys.modules["mlx_lm"] = package

import mlx.core as mx  # noqa: E402
from mlx_lm.models import llama  # noqa: E402
from mlx_lm.models.cache import TurboQuantKVCache, make_prompt_cache  # noqa: E402

MiB = 2**20
CACHES = {
    "float16": lambda model: make_prompt_cache(model),
    # What mlx_lm.generate builds with --kv-mode turbo4 (from the first token).
    "turbo4": lambda model: [
        TurboQuantKVCache(key_mode="turbo4", seed=i) for i in range(len(model.layers))
    ],
}


def make_model(layers, dtype):
    args = llama.ModelArgs(
        model_type="llama",
        hidden_size=4096,
        num_hidden_layers=layers,
        intermediate_size=14336,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        rms_norm_eps=1e-5,
        vocab_size=128256,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    )
    model = llama.Model(args)
    model.set_dtype(dtype)
    mx.eval(model.parameters())
    return model


def prompt(model, cache_name, tokens, step):
    """generate_step's prefill over `tokens`, then the last token's logits:
    (seconds, peak bytes over what was in use before, steps)."""
    gc.collect()
    mx.synchronize()
    mx.clear_cache()
    cache = CACHES[cache_name](model)
    before = mx.get_active_memory()
    mx.reset_peak_memory()
    tic = time.perf_counter()
    done, steps = 0, 0
    while len(tokens) - done > 1:
        n = min(step, len(tokens) - done - 1)
        model(tokens[None, done : done + n], cache=cache)
        mx.eval([c.state for c in cache])
        mx.clear_cache()
        done += n
        steps += 1
    logits = model(tokens[None, done:], cache=cache)
    mx.eval(logits)
    seconds = time.perf_counter() - tic
    peak = mx.get_peak_memory() - before
    del cache, logits
    return seconds, peak, steps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[32768])
    p.add_argument("--step", type=int, nargs="+", default=[512, 2048])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--caches", nargs="+", default=list(CACHES), choices=CACHES)
    p.add_argument("--dtype", default="float16")
    p.add_argument("--out", type=Path)
    args = p.parse_args()

    dtype = getattr(mx, args.dtype)
    model = make_model(args.layers, dtype)
    weights = mx.get_active_memory()
    device = mx.device_info().get("device_name", str(mx.default_device()))
    tokens = mx.random.randint(0, 128256, (max(args.lengths),), key=mx.random.key(0))
    mx.eval(tokens)
    # A short prompt per cache first: kernels loaded, buffers allocated.
    for name in args.caches:
        prompt(model, name, tokens[:1024], 512)

    rows = []
    for length in args.lengths:
        for step in args.step:
            for name in args.caches:
                runs = [prompt(model, name, tokens[:length], step) for _ in range(2)]
                (s1, peak1, steps), (s2, peak2, _) = runs
                row = (length, step, steps, name, length / s1, length / s2)
                row += (max(peak1, peak2) / MiB,)
                rows.append(row)
                print(
                    f"{length:6d} step {step:5d} {name:8s} first {row[4]:8.0f} tok/s "
                    f"({s1:6.2f} s), again {row[5]:8.0f} tok/s ({s2:6.2f} s), "
                    f"peak over weights {row[6]:8.1f} MiB",
                    flush=True,
                )

    lines = [
        "# A long prompt end to end on a CUDA GPU",
        "",
        f"Written by scripts/cuda/prompt_gpu.py on {device} with mlx "
        f"{mx.__version__}: mlx-lm's llama with Llama 3 8B's attention and "
        f"MLP shapes, {args.layers} layers, random {args.dtype} weights "
        f"({weights / MiB:.0f} MiB), a prompt of random tokens processed as "
        "mlx-lm's generate_step does (chunks of `step` tokens, the caches' "
        "state evaluated and mx.clear_cache() after each, then the last "
        "token's logits); MLX's defaults (cuDNN on). float16: mlx-lm's "
        "KVCache; turbo4: TurboQuantKVCache(key_mode='turbo4'), what "
        "mlx_lm.generate builds with --kv-mode turbo4. first: the first "
        "run of this length and step in the process, in a fresh cache "
        "(cuDNN builds a graph for each shape it has not seen; those of "
        "earlier rows stay built); again: the same prompt once more in a "
        "fresh cache. peak: mx.get_peak_memory() "
        "over both runs minus the memory in use before each (the weights).",
        "",
        "| prompt | step | steps | cache | tok/s, first | tok/s, again "
        "| peak over weights MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for length, step, steps, name, t1, t2, peak in rows:
        lines.append(
            f"| {length} | {step} | {steps} | {name} | {t1:.0f} | {t2:.0f} | {peak:.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
