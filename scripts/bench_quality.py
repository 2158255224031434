#!/usr/bin/env python3
"""Quality per bit of KV-cache formats, measured on the same data in one run.

For every format it reports the bits per element (scales and biases
included), the compression against float16, the mean squared error on unit
vectors, the error of inner products with random queries (relative, and its
bias: the slope of estimated against true inner products, minus one), and the
error of attention outputs against float64 attention over the unquantized
keys and values (relative Frobenius error and mean cosine similarity).

Data: Gaussian vectors, and keys and values shaped like an LLM's: a few
outlier channels 10-50x larger than the rest and a non-zero mean per channel.
Each format runs on them as they are and after a randomized Hadamard
transform (fixed random signs, then mx.hadamard_transform), the rotation
TurboQuant assumes. Everything is seeded, so a run is reproducible.

    bench_quality.py [--out results]   writes quality.md and quality.png
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mlx.core as mx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_codebooks  # noqa: E402

HEADS = 8
QUERIES = 16
MAIN_DIM = 128
MAIN_LENGTH = 4096
SWEEP = [(64, 4096), (128, 1024), (128, 4096), (128, 32768), (256, 4096)]


@dataclass
class Format:
    name: str
    bits: float  # per element, scales and biases included, at MAIN_DIM
    nominal_bits: int  # bits per code, for the paper's and the lower bound
    roundtrip: Callable  # float32 array [..., D] -> dequantized float32
    family: str


def mlx_roundtrip(**kwargs):
    def roundtrip(x):
        parts = mx.quantize(mx.array(x, dtype=mx.float16), **kwargs)
        biases = parts[2] if len(parts) == 3 else None
        out = mx.dequantize(parts[0], parts[1], biases, **kwargs, dtype=mx.float32)
        return np.array(out)

    return roundtrip


def earlier_attempt(bits):
    def roundtrip(x):
        # float16 scale, as it stored: norm / sqrt(d).
        out = reference_codebooks.earlier_attempt_roundtrip(x, bits)
        return out.astype(np.float16).astype(np.float32)

    return roundtrip


def formats(dim):
    scale_bits = 16 / dim
    return [
        Format("turbo3", 3 + scale_bits, 3, mlx_roundtrip(mode="turbo3"), "turbo"),
        Format("turbo4", 4 + scale_bits, 4, mlx_roundtrip(mode="turbo4"), "turbo"),
        Format("earlier turbo3", 3 + scale_bits, 3, earlier_attempt(3), "earlier"),
        Format("earlier turbo4", 4 + scale_bits, 4, earlier_attempt(4), "earlier"),
        Format(
            "affine3 g32", 3 + 1.0, 3, mlx_roundtrip(bits=3, group_size=32), "affine"
        ),
        Format(
            "affine3 g64", 3 + 0.5, 3, mlx_roundtrip(bits=3, group_size=64), "affine"
        ),
        Format(
            "affine4 g32", 4 + 1.0, 4, mlx_roundtrip(bits=4, group_size=32), "affine"
        ),
        Format(
            "affine4 g64", 4 + 0.5, 4, mlx_roundtrip(bits=4, group_size=64), "affine"
        ),
        Format(
            "affine8 g64", 8 + 0.5, 8, mlx_roundtrip(bits=8, group_size=64), "affine"
        ),
        Format("mxfp4", 4 + 0.25, 4, mlx_roundtrip(mode="mxfp4"), "mxfp4"),
        Format(
            "float16",
            16,
            16,
            lambda x: x.astype(np.float16).astype(np.float32),
            "float16",
        ),
    ]


PAPER = {3: 0.03, 4: 0.009}

# Keys and values in different formats, as TurboQuant caches are run: keys,
# to which attention is more sensitive, in more bits.
PAIRS = {
    "K8V4": ("affine8 g64", "turbo4"),
    "K8V3": ("affine8 g64", "turbo3"),
    "K4V3": ("turbo4", "turbo3"),
}


class Rotation:
    """A randomized Hadamard transform of size `dim`, as mx.hadamard_transform
    computes it, with fixed random signs."""

    def __init__(self, dim, seed):
        rng = np.random.default_rng(seed)
        self.signs = np.where(rng.random(dim) < 0.5, -1.0, 1.0).astype(np.float32)
        self.scale = dim**-0.5

    def forward(self, x):
        y = mx.hadamard_transform(mx.array(x * self.signs), scale=self.scale)
        return np.array(y)

    def inverse(self, x):
        y = mx.hadamard_transform(mx.array(x, dtype=mx.float32), scale=self.scale)
        return np.array(y) * self.signs


def gaussian(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def llm_like(rng, shape, outliers=4, low=10, high=50):
    """A few channels `low`-`high`x larger than the rest, and a mean per
    channel, as the keys of attention layers have."""
    dim = shape[-1]
    channel_scale = np.ones(dim, dtype=np.float32)
    big = rng.choice(dim, size=outliers, replace=False)
    channel_scale[big] = rng.uniform(low, high, size=outliers)
    mean = rng.normal(0, 1, size=dim).astype(np.float32) * channel_scale * 0.5
    return gaussian(rng, shape) * channel_scale + mean


def quantized(fmt, x, rotation):
    if rotation is None:
        return fmt.roundtrip(x)
    return rotation.inverse(fmt.roundtrip(rotation.forward(x)))


def distortion(fmt, x, rotation, rng):
    """MSE on unit vectors, and the relative error and bias of inner
    products with Gaussian queries."""
    x = x / np.linalg.norm(x, axis=-1, keepdims=True)
    x_hat = quantized(fmt, x, rotation)
    mse = float(np.mean(np.sum((x.astype(np.float64) - x_hat) ** 2, axis=-1)))
    q = gaussian(rng, x.shape).astype(np.float64)
    ip = np.sum(q * x, axis=-1)
    est = np.sum(q * x_hat, axis=-1)
    rel = float(np.sqrt(np.mean((est - ip) ** 2) / np.mean(ip**2)))
    slope = float(np.sum(est * ip) / np.sum(ip * ip))
    return mse, rel, slope - 1


def attention64(q, k, v):
    """Softmax attention in float64; q [H, Lq, D], k and v [H, L, D]."""
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    p = np.exp(s - s.max(-1, keepdims=True))
    return (p / p.sum(-1, keepdims=True)) @ v


def attention_error(k_fmt, v_fmt, q, k, v, rotation):
    ref = attention64(q, k, v)
    out = attention64(q, quantized(k_fmt, k, rotation), quantized(v_fmt, v, rotation))
    rel = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
    cos = np.sum(out * ref, -1) / (
        np.linalg.norm(out, axis=-1) * np.linalg.norm(ref, axis=-1)
    )
    return rel, float(np.mean(cos))


def attention_data(dim, length, seed, kind="llm-like"):
    """Queries, keys and values, Gaussian or with an LLM's outliers; the
    queries are scaled so that attention is neither uniform nor one-hot."""
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        k = gaussian(rng, (HEADS, length, dim))
        v = gaussian(rng, (HEADS, length, dim))
    else:
        k = llm_like(rng, (HEADS, length, dim))
        v = llm_like(rng, (HEADS, length, dim), outliers=2, low=5, high=10)
    q = gaussian(rng, (HEADS, QUERIES, dim))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(dim)
    q *= 2.0 / s.std()
    return q, k, v


def fmt_num(x, digits=4):
    return f"{x:.{digits}g}"


def run(out_dir):
    mx.set_default_device(mx.cpu)
    rows = []
    fmts = formats(MAIN_DIM)
    rng = np.random.default_rng(0)
    data = {
        "gaussian": gaussian(rng, (16384, MAIN_DIM)),
        "llm-like": llm_like(rng, (16384, MAIN_DIM)),
    }
    q, k, v = attention_data(MAIN_DIM, MAIN_LENGTH, seed=1)
    gq, gk, gv = attention_data(MAIN_DIM, MAIN_LENGTH, seed=4, kind="gaussian")
    for rotated in (False, True):
        rotation = Rotation(MAIN_DIM, seed=2) if rotated else None
        for fmt in fmts:
            row = {"format": fmt.name, "rotated": rotated, "fmt": fmt}
            for kind, x in data.items():
                mse, rel, bias = distortion(fmt, x, rotation, np.random.default_rng(3))
                row[kind] = dict(mse=mse, ip_rel=rel, ip_bias=bias)
            row["attn"] = attention_error(fmt, fmt, q, k, v, rotation)
            row["attn gaussian"] = attention_error(fmt, fmt, gq, gk, gv, rotation)
            rows.append(row)
            print(f"  {fmt.name:16s} rotated={rotated!s:5s} done", flush=True)

    by_name = {f.name: f for f in fmts}
    pairs = {}
    rotation = Rotation(MAIN_DIM, seed=2)
    for name, (k_name, v_name) in PAIRS.items():
        k_fmt, v_fmt = by_name[k_name], by_name[v_name]
        pairs[name] = dict(
            keys=k_name,
            values=v_name,
            bits=(k_fmt.bits + v_fmt.bits) / 2,
            attn=attention_error(k_fmt, v_fmt, q, k, v, rotation),
            attn_gaussian=attention_error(k_fmt, v_fmt, gq, gk, gv, rotation),
        )

    sweep = {}
    for dim, length in SWEEP:
        q, k, v = attention_data(dim, length, seed=dim + length)
        rotation = Rotation(dim, seed=dim)
        by_name = {f.name: f for f in formats(dim)}
        for name in ("turbo3", "turbo4", "affine4 g64", "affine4 g32"):
            fmt = by_name[name]
            for rotated in (False, True):
                sweep[(dim, length, name, rotated)] = attention_error(
                    fmt, fmt, q, k, v, rotation if rotated else None
                )
        print(f"  sweep D={dim} L={length} done", flush=True)

    text = report(rows, pairs, sweep)
    (out_dir / "quality.md").write_text(text)
    plot(rows, pairs, out_dir / "quality.png")
    return text


def report(rows, pairs, sweep):
    lines = [
        "# Quality per bit of KV-cache formats",
        "",
        "Written by `make bench-quality` (scripts/bench_quality.py); seeded, so it",
        "regenerates identically. Head dimension 128. *Rotated*: a randomized",
        "Hadamard transform before quantizing, undone after. MSE: mean squared",
        "error on unit vectors (16384 of them). IP: inner products of LLM-like",
        "unit keys with Gaussian queries, relative RMS error and bias (slope of",
        "estimated against true, minus 1). Attention: 8 heads, 16 queries, 4096",
        "keys and values, Gaussian or LLM-like (4 outlier channels 10-50x the",
        "rest, a mean per channel), against float64 attention on the unquantized",
        "cache: relative Frobenius error and mean cosine similarity.",
        "Paper: TurboQuant's reported MSE; bound: the lower bound 4^-b.",
        "",
        "| format | rotated | bits/elt | vs fp16 | MSE gaussian | MSE llm-like "
        "| paper | bound | IP rel err | IP bias | attn rel err gaussian "
        "| attn rel err llm-like | attn cos llm-like |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        fmt = row["fmt"]
        b = fmt.nominal_bits
        paper = fmt_num(PAPER[b]) if fmt.family == "turbo" and b in PAPER else ""
        bound = fmt_num(4.0**-b) if b < 16 else ""
        llm = row["llm-like"]
        attn_rel, attn_cos = row["attn"]
        lines.append(
            f"| {fmt.name} | {'yes' if row['rotated'] else 'no'} | {fmt.bits:.3f} "
            f"| {16 / fmt.bits:.2f}x | {fmt_num(row['gaussian']['mse'])} "
            f"| {fmt_num(llm['mse'])} | {paper} | {bound} "
            f"| {fmt_num(llm['ip_rel'])} | {llm['ip_bias']:+.4f} "
            f"| {fmt_num(row['attn gaussian'][0])} "
            f"| {fmt_num(attn_rel)} | {attn_cos:.5f} |"
        )
    lines += [
        "",
        "Keys and values in different formats (rotated; bits counted over keys",
        "and values together):",
        "",
        "| pair | keys | values | bits/elt | vs fp16 | attn rel err gaussian "
        "| attn rel err llm-like | attn cos llm-like |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, pair in pairs.items():
        lines.append(
            f"| {name} | {pair['keys']} | {pair['values']} | {pair['bits']:.3f} "
            f"| {16 / pair['bits']:.2f}x | {fmt_num(pair['attn_gaussian'][0])} "
            f"| {fmt_num(pair['attn'][0])} | {pair['attn'][1]:.5f} |"
        )
    lines += [
        "",
        "Attention relative error across head dimensions and context lengths",
        "(same data recipe; without / with the rotation):",
        "",
        "| D | L | "
        + " | ".join(n for n in ("turbo3", "turbo4", "affine4 g64", "affine4 g32"))
        + " |",
        "|---|---|---|---|---|---|",
    ]
    for dim, length in SWEEP:
        cells = []
        for name in ("turbo3", "turbo4", "affine4 g64", "affine4 g32"):
            raw = sweep[(dim, length, name, False)][0]
            rot = sweep[(dim, length, name, True)][0]
            cells.append(f"{fmt_num(raw, 3)} / {fmt_num(rot, 3)}")
        lines.append(f"| {dim} | {length} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, pairs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "turbo": "tab:blue",
        "earlier": "tab:orange",
        "affine": "tab:green",
        "mxfp4": "tab:purple",
        "float16": "tab:gray",
    }
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric, label in (
        (axes[0], lambda r: r["gaussian"]["mse"], "MSE on Gaussian unit vectors"),
        (axes[1], lambda r: r["attn"][0], "attention relative error, LLM-like K/V"),
    ):
        for row in rows:
            fmt = row["fmt"]
            if fmt.family == "float16":
                continue
            marker = "o" if row["rotated"] else "x"
            ax.scatter(fmt.bits, metric(row), color=colors[fmt.family], marker=marker)
            ax.annotate(
                fmt.name,
                (fmt.bits, metric(row)),
                fontsize=7,
                xytext=(4, 2),
                textcoords="offset points",
            )
        if ax is axes[1]:
            for name, pair in pairs.items():
                ax.scatter(pair["bits"], pair["attn"][0], color="tab:red", marker="^")
                ax.annotate(
                    name,
                    (pair["bits"], pair["attn"][0]),
                    fontsize=7,
                    xytext=(4, 2),
                    textcoords="offset points",
                )
        ax.set_yscale("log")
        ax.set_xlabel("bits per element (scales and biases included)")
        ax.set_xlim(2.9, 9.0)
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    bits = np.linspace(2.9, 8.6, 50)
    axes[0].plot(bits, 4.0**-bits, "k:", lw=1, label="lower bound 4^-b")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title("o: after a randomized Hadamard rotation, x: without")
    axes[1].set_title("head dim 128, 4096 keys, 8 heads, 16 queries")
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(run(args.out))
    print(f"wrote {args.out / 'quality.md'} and {args.out / 'quality.png'}")


if __name__ == "__main__":
    main()
