#!/usr/bin/env python3
"""Lloyd-Max codebooks for TurboQuant: the single source of their constants.

TurboQuant quantizes each coordinate of a rotated, normalized vector, which is
close to N(0, 1), with the scalar quantizer of least mean squared error for
N(0, 1): the Lloyd-Max quantizer. This script solves for it and writes the
one header of constants that the series' C++ (backend/common/turbo_quant.h)
and Metal (kernels/turbo_quant.h) code both include.

    turbo_codebooks.py                 print the codebooks and their MSE
    turbo_codebooks.py --write MLX     write the generated header into MLX
    turbo_codebooks.py --check MLX     fail if the header in MLX differs
"""

import argparse
import difflib
import math
import sys
from pathlib import Path

import numpy as np

BITS = (3, 4)

# The generated file, relative to the mlx source tree.
HEADER = Path("mlx/backend/common/turbo_codebooks.h")


def _pdf(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def _cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def cell_moments(lo, hi):
    """Probability, first and second moments of N(0, 1) on [lo, hi]."""
    p = _cdf(hi) - _cdf(lo)
    m1 = _pdf(lo) - _pdf(hi)
    lo_term = lo * _pdf(lo) if math.isfinite(lo) else 0.0
    hi_term = hi * _pdf(hi) if math.isfinite(hi) else 0.0
    m2 = p + lo_term - hi_term
    return p, m1, m2


def mse(centroids, boundaries=None):
    """Mean squared error on N(0, 1) of quantizing to the nearest centroid
    (or to the cells that `boundaries` delimit)."""
    c = [float(x) for x in centroids]
    if boundaries is None:
        boundaries = [(a + b) / 2 for a, b in zip(c[:-1], c[1:])]
    edges = [-math.inf, *map(float, boundaries), math.inf]
    total = 0.0
    for ci, lo, hi in zip(c, edges[:-1], edges[1:]):
        p, m1, m2 = cell_moments(lo, hi)
        total += m2 - 2 * ci * m1 + ci * ci * p
    return total


def lloyd_max(bits, tol=1e-15, max_iter=200000):
    """Centroids (increasing) of the Lloyd-Max quantizer of N(0, 1)."""
    n = 1 << bits
    # Start from the cell midpoints of equal-probability cells.
    c = [math.sqrt(2) * _erfinv(2 * (i + 0.5) / n - 1) for i in range(n)]
    for _ in range(max_iter):
        t = [-math.inf] + [(a + b) / 2 for a, b in zip(c[:-1], c[1:])] + [math.inf]
        new = []
        for lo, hi in zip(t[:-1], t[1:]):
            p, m1, _ = cell_moments(lo, hi)
            new.append(m1 / p)
        # Keep the solution exactly symmetric.
        new = [(a - b) / 2 for a, b in zip(new, reversed(new))]
        delta = max(abs(a - b) for a, b in zip(new, c))
        c = new
        if delta < tol:
            break
    else:
        raise RuntimeError(f"Lloyd-Max did not converge for {bits} bits")
    return np.array(c)


def _erfinv(y):
    # Newton's method on erf; the starting point is good enough for |y| < 1.
    x = 0.0
    for _ in range(100):
        err = math.erf(x) - y
        x -= err / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def float32_codebook(bits):
    """The float32 centroids and decision boundaries the kernels use."""
    c = lloyd_max(bits).astype(np.float32)
    mid = (c[:-1].astype(np.float64) + c[1:].astype(np.float64)) / 2
    return c, mid.astype(np.float32)


def _literal(value):
    """A float literal that reads back as the same float32."""
    text = f"{float(value):.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text + "f"


def _description(bits):
    return f"{bits} bits, MSE on N(0, 1) {mse(lloyd_max(bits)):.6f}"


def _define(name, values):
    """A macro of comma-separated float literals, one per line."""
    lines = [f"#define {name}", *(f"  {_literal(v)}," for v in values)]
    lines[-1] = lines[-1][:-1]
    return [f"{line} \\" for line in lines[:-1]] + [lines[-1]]


def header():
    out = [
        "// Copyright © 2026 Apple Inc.",
        "",
        "// The TurboQuant codebooks: the Lloyd-Max quantizers of N(0, 1) with 8",
        "// and 16 levels (the fixed points of Lloyd's iteration, rounded to",
        "// float32). Centroid i, increasing, stands for code i; the boundaries are",
        "// the midpoints of consecutive centroids, and a normalized coordinate u",
        "// gets the code equal to the number of boundaries below u.",
        "//",
        "// Plain lists of literals, so that the C++ backends",
        "// (backend/common/turbo_quant.h) and the Metal kernels",
        "// (backend/metal/kernels/turbo_quant.h) share one copy.",
        "",
        "#pragma once",
        "",
        "// One value per line.",
        "// clang-format off",
    ]
    for bits in BITS:
        c, b = float32_codebook(bits)
        out += [
            "",
            f"// {_description(bits)}",
            *_define(f"MLX_TURBO{bits}_CENTROIDS", c),
            "",
            *_define(f"MLX_TURBO{bits}_BOUNDARIES", b),
        ]
    out += ["// clang-format on", ""]
    return "\n".join(out)


def generated():
    return {HEADER: header()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="MLX", type=Path)
    group.add_argument("--check", metavar="MLX", type=Path)
    args = parser.parse_args()

    if args.write:
        for path, text in generated().items():
            (args.write / path).write_text(text)
            print(f"wrote {args.write / path}")
        return 0
    if args.check:
        bad = 0
        for path, text in generated().items():
            target = args.check / path
            have = target.read_text() if target.exists() else ""
            if have != text:
                bad = 1
                diff = difflib.unified_diff(
                    have.splitlines(), text.splitlines(), str(target), "generated"
                )
                print("\n".join(diff), file=sys.stderr)
        if bad:
            print(
                "the codebooks in the series differ from the solver's: "
                "run scripts/turbo_codebooks.py --write mlx and re-export",
                file=sys.stderr,
            )
        return bad

    print("| bits | centroids (positive half) | MSE on N(0,1) | 4^-b |")
    print("|---|---|---|---|")
    for bits in (1, 2, *BITS):
        c = lloyd_max(bits)
        half = ", ".join(f"{x:.5f}" for x in c[len(c) // 2 :])
        print(f"| {bits} | {half} | {mse(c):.6f} | {4.0 ** -bits:.6f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
