#!/usr/bin/env python3
"""What keeping the first tokens of a TurboQuant KV cache in float16 would
buy: next-token KL against the float16 cache, on SmolLM2, in a simulation.

No cache keeps tokens in float16 yet: attending over float16 and quantized
tokens at once needs the quantized attention's log-sum-exp, which
mx.fast.quantized_scaled_dot_product_attention does not return. So each layer
here is a float cache whose keys and values pass through the format
(quantized and dequantized, rotated and centered as TurboQuantKVCache does:
mlx_lm.kv_budget's round-trip cache) except for the first N tokens, which
stay as the model gave them. The rows compare with each other; the real
caches of scripts/bench_model.py, which attend in float32 through the fused
kernel, score a little better than the N = 0 rows here.

    scripts/bench_protected.py                 # writes results/protected_tokens.md
    scripts/bench_protected.py --protect 0 1 4
"""

import argparse
import sys
import time
from pathlib import Path

import mlx.core as mx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_model  # noqa: E402
import gguf_models  # noqa: E402
from mlx_lm.kv_budget import _RoundTripKVCache, format_bits  # noqa: E402

# Key and value formats (the bench's names for them).
FORMATS = {
    "turbo4": ("turbo4", "turbo4"),
    "k4v3": ("turbo4", "turbo3"),
    "turbo3": ("turbo3", "turbo3"),
}


class ProtectedRoundTrip(_RoundTripKVCache):
    """A round-trip cache that keeps its first ``protect`` tokens as given."""

    def __init__(self, key_format, value_format, seed, protect):
        super().__init__(key_format, value_format, seed=seed, calibrate=True)
        self.protect = protect

    def _round_trip(self, x, name, mean=None):
        y = super()._round_trip(x, name, mean)
        keep = self.protect - self.offset  # tokens of x still protected
        if keep > 0:
            y = mx.concatenate([x[..., :keep, :], y[..., keep:, :]], axis=2)
        return y


def next_token_kl(model, cache, inputs, chunk, reference):
    kl, agree = [], []
    for lp in bench_model.log_probs(model, cache, inputs, chunk):
        ref = reference[len(kl)]
        kl.append((mx.exp(ref) * (ref - lp)).sum(axis=-1))
        agree.append(mx.argmax(ref, axis=-1) == mx.argmax(lp, axis=-1))
    return mx.concatenate(kl).mean().item(), mx.concatenate(agree).mean().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--protect", type=int, nargs="+", default=[0, 1, 4, 64])
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    parser.add_argument("--out", type=Path, default=Path("results/protected_tokens.md"))
    args = parser.parse_args()

    model, tokenizer = gguf_models.load(gguf_models.SMOLLM2)
    _, head_dim = bench_model.describe(gguf_models.SMOLLM2, model)
    ids = tokenizer.encode(bench_model.TEXT.read_text())[: args.tokens]
    inputs = mx.array(ids[:-1])
    reference = list(
        bench_model.log_probs(
            model, bench_model.make_cache(model, "float16"), inputs, args.chunk
        )
    )
    rows = []
    for name in args.formats:
        kf, vf = FORMATS[name]
        bits = (format_bits(kf, head_dim) + format_bits(vf, head_dim)) / 2
        for n in args.protect:
            tic = time.perf_counter()
            cache = [
                bench_model.float16_inputs(ProtectedRoundTrip(kf, vf, i, n))
                for i in range(len(model.layers))
            ]
            kl, top1 = next_token_kl(model, cache, inputs, args.chunk, reference)
            # The protected tokens in float16 instead of the format.
            all_in = bits + n * (16 - bits) / len(ids)
            rows.append((name, bits, n, all_in, kl, top1))
            print(
                f"{name:7s} protect {n:3d}: KL {kl:.4f} top-1 {top1:.3f} "
                f"({time.perf_counter() - tic:.0f} s)",
                flush=True,
            )

    lines = [
        "# Protected tokens (simulated)",
        "",
        "Written by scripts/bench_protected.py; do not edit by hand.",
        "",
        f"SmolLM2-135M-Instruct (as in results/model.md), the first {len(ids)} "
        f"tokens of model_text.txt in chunks of {args.chunk}, next-token KL "
        "against the float16 cache and top-1 agreement with it. Protect N: "
        "the first N tokens' keys and values of every layer are kept as the "
        "model gave them (float16); the rest pass through the format "
        "(quantized and dequantized, rotated, keys centered on the first "
        "chunk's mean), in a float cache: a simulation of a cache that would "
        "keep them in float16, which needs the quantized attention's "
        "log-sum-exp to combine both parts. bits/elt all-in counts the "
        f"protected tokens in float16 at {len(ids)} tokens.",
        "",
        "| format | bits/elt | protect N | all-in at this length | KL | top-1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, bits, n, all_in, kl, top1 in rows:
        lines.append(
            f"| {name} | {bits:.3g} | {n} | {all_in:.3f} | {kl:.4f} | {top1:.3f} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
