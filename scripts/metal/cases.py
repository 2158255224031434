"""The cases metal_run.py executes: inputs, float64 references and the
results report.

References are computed in float64 from the same packed codes and scales
the kernels read, with the formats taken from independent sources: the
TurboQuant codebooks from the project's Lloyd-Max solver
(scripts/turbo_codebooks.py), never from the kernel headers under test;
affine and MXFP4 from their definitions. MLX's CPU kernel runs on the same
inputs, for comparison."""

import itertools
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import host
import mlx.core as mx
import msl
import numpy as np

sys.path.insert(0, str(msl.ROOT / "scripts"))
import turbo_codebooks  # noqa: E402

DISPATCH = "mlx/backend/metal/scaled_dot_product_attention.cpp"
DTYPES = ("float32", "float16", "bfloat16")
# Worst error relative to max |reference| that passes, per dtype: 1.5-4x the
# worst seen (results/metal_run.md), and below what a wrong codebook entry, a
# lost barrier or a wrong lane gives. bfloat16's is also below what the
# shim's former truncating float-to-bfloat conversion gave (8.9e-3).
TOLERANCE = {"float32": 5e-6, "float16": 1.5e-3, "bfloat16": 7e-3}
MODES = {
    "affine": "Affine",
    "mxfp4": "Mxfp4",
    "turbo3": "TurboQuant3",
    "turbo4": "TurboQuant4",
}
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6])
# MLX's names of dtypes (C++ enumerators), as the dispatch code compares them.
CXX_DTYPE = {
    "float32": "float32",
    "float16": "float16",
    "bfloat16": "bfloat16",
    "bool": "bool_",
    "uint32": "uint32",
    "uint8": "uint8",
}


@dataclass(frozen=True)
class Fmt:
    mode: str
    bits: int
    group_size: int = 0  # 0: the head dimension (TurboQuant)

    def label(self):
        g = f"g{self.group_size}" if self.mode == "affine" else ""
        return f"{self.mode}{self.bits if self.mode == 'affine' else ''}{g}"


TURBO3, TURBO4 = Fmt("turbo3", 3), Fmt("turbo4", 4)
AFFINE4, AFFINE8_32 = Fmt("affine", 4, 64), Fmt("affine", 8, 32)
AFFINE8 = Fmt("affine", 8, 64)
AFFINE4_32, MXFP4 = Fmt("affine", 4, 32), Fmt("mxfp4", 4, 32)


@dataclass(frozen=True)
class Case:
    dtype: str = "float32"
    D: int = 128
    key: Fmt = None  # None: float keys and values (upstream's kernels)
    value: Fmt = None  # None: as the keys
    B: int = 1
    Hq: int = 4
    Hkv: int = 1
    Lq: int = 1
    N: int = 100
    blocks: int = 32
    mask: str = None  # "bool" or "additive"
    sinks: bool = False
    causal: bool = False
    dispatch: str = "quant_sdpa_vector_2pass"
    # Queries laid out as (B, Lq, Hq, D) and transposed, as models make them
    # (MLX passes them uncopied when B or Hq is 1).
    q_transposed: bool = False
    schedules: tuple = ("rr",)
    seed: int = 0

    @property
    def vfmt(self):
        return self.value or self.key

    @property
    def tolerance(self):
        return TOLERANCE[self.dtype]

    @property
    def name(self):
        fmt = "float" if self.key is None else self.key.label()
        if self.value and self.value != self.key:
            fmt += "-" + self.value.label()
        parts = [self.dispatch.replace("quant_sdpa_vector_2pass", "quant"), fmt]
        parts += [self.dtype, f"D{self.D}", f"B{self.B}", f"H{self.Hq}/{self.Hkv}"]
        parts += [f"Lq{self.Lq}", f"N{self.N}"]
        if self.dispatch != "sdpa_vector":
            parts.append(f"blocks{self.blocks}")
        parts += [
            x
            for x, on in (
                (self.mask, self.mask),
                ("sinks", self.sinks),
                ("causal", self.causal),
                ("qT", self.q_transposed),
            )
            if on
        ]
        return "-".join(parts)


def _np(a):
    """An MLX array's bytes as numpy (bfloat16 as its uint16 bits)."""
    if a.dtype == mx.bfloat16:
        return np.array(a.view(mx.uint16))
    return np.array(a)


def _f64(a, dtype):
    if dtype == "bfloat16":
        return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return a.astype(np.float64)


def _arr(a, dtype):
    return host.Arr(np.ascontiguousarray(a), CXX_DTYPE[dtype])


def turbo_codebook(bits):
    """All 2^bits centroids, increasing: index i is the i-th."""
    return turbo_codebooks.lloyd_max(bits)


def unpack(words, bits, D):
    b = np.unpackbits(
        np.ascontiguousarray(words).view(np.uint8), axis=-1, bitorder="little"
    )
    b = b.reshape(*words.shape[:-1], D, bits).astype(np.int64)
    return (b << np.arange(bits)).sum(-1)


def dequantize(parts, fmt, D, dtype):
    """float64 values of packed codes and scales (and biases)."""
    codes = unpack(parts[0], fmt.bits, D)
    if fmt.mode.startswith("turbo"):
        return turbo_codebook(fmt.bits)[codes] * _f64(parts[1], dtype)
    g = fmt.group_size

    def per_element(a, f):
        return np.repeat(f(a), g, axis=-1)

    if fmt.mode == "affine":
        scales = per_element(parts[1], lambda a: _f64(a, dtype))
        biases = per_element(parts[2], lambda a: _f64(a, dtype))
        return codes * scales + biases
    if fmt.mode == "mxfp4":
        return E2M1[codes] * per_element(
            parts[1], lambda a: 2.0 ** (a.astype(np.float64) - 127)
        )
    raise ValueError(fmt.mode)


def quantize(x, fmt):
    if fmt.mode.startswith("turbo"):
        return mx.quantize(x, mode=fmt.mode, stream=mx.cpu)
    return mx.quantize(
        x, group_size=fmt.group_size, bits=fmt.bits, mode=fmt.mode, stream=mx.cpu
    )


def _garbage(shape, dtype):
    """An output or temporary buffer as the GPU would hand it: garbage (all
    bits set: NaN in every float type)."""
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer(b"\xff" * n, dtype).reshape(shape).copy()


@dataclass
class Inputs:
    case: Case
    host_args: dict
    reference: np.ndarray
    cpu: np.ndarray  # MLX's CPU kernel on the same inputs (float64)
    out: np.ndarray
    buffers: dict = field(default_factory=dict)  # temporaries by C++ name

    def temporaries(self, name, ns):
        """The arrays the dispatch function allocates (intermediate results
        of the 2-pass kernels), garbage-filled."""
        c = self.case
        if name not in ("intermediate", "sums", "maxs"):
            return None
        if name not in self.buffers:
            blocks = ns["blocks"]
            rows = (c.B, c.Hq, c.Lq, blocks)
            if name == "intermediate":
                a = _garbage(rows + (c.D,), self.out.dtype)
                self.buffers[name] = host.Arr(a, self.host_args["q"].dtype())
            else:
                self.buffers[name] = host.Arr(_garbage(rows, np.float32), "float32")
        return self.buffers[name]

    def reset(self):
        self.out[...] = _garbage(self.out.shape, self.out.dtype)
        for b in self.buffers.values():
            b.data[...] = _garbage(b.data.shape, b.data.dtype)


def _queries(q, c):
    if not c.q_transposed:
        return _arr(q, c.dtype)
    assert c.B == 1 or c.Hq == 1, "MLX copies other transposed queries"
    stored = np.ascontiguousarray(q.transpose(0, 2, 1, 3))
    return host.Arr(stored.transpose(0, 2, 1, 3), CXX_DTYPE[c.dtype])


def prepare(c):
    rng = np.random.default_rng(c.seed)
    dt = getattr(mx, c.dtype)

    def normal(shape):
        return mx.array(rng.standard_normal(shape).astype(np.float32)).astype(dt)

    q, k, v = (
        normal((c.B, c.Hq, c.Lq, c.D)),
        normal((c.B, c.Hkv, c.N, c.D)),
        normal((c.B, c.Hkv, c.N, c.D)),
    )
    scale = float(np.float32(1 / np.sqrt(c.D)))
    mask = None
    if c.mask == "bool":
        m = rng.random((c.B, c.Hq, c.Lq, c.N)) > 0.3
        m[..., -1] = True  # no fully masked row
        mask = mx.array(m)
    elif c.mask == "additive":
        mask = normal((c.B, c.Hq, c.Lq, c.N))
    sinks = normal((c.Hq,)) if c.sinks else None

    gqa = c.Hq // c.Hkv
    qf = _f64(_np(q), c.dtype)
    if c.key is None:
        kd, vd = _f64(_np(k), c.dtype), _f64(_np(v), c.dtype)
    else:
        kp, vp = quantize(k, c.key), quantize(v, c.vfmt)
        kd = dequantize([_np(a) for a in kp], c.key, c.D, c.dtype)
        vd = dequantize([_np(a) for a in vp], c.vfmt, c.D, c.dtype)
    kd, vd = np.repeat(kd, gqa, 1), np.repeat(vd, gqa, 1)
    s = np.einsum("bhqd,bhkd->bhqk", qf * scale, kd)
    if c.mask == "bool":
        s = np.where(np.array(mask), s, -np.inf)
    elif c.mask == "additive":
        s = s + _f64(_np(mask), c.dtype)
    if c.causal:
        allowed = np.arange(c.N)[None, :] <= (c.N - c.Lq + np.arange(c.Lq))[:, None]
        s = np.where(allowed, s, -np.inf)
    top = s.max(-1, keepdims=True)
    if c.sinks:
        sk = _f64(_np(sinks), c.dtype)[None, :, None, None]
        top = np.maximum(top, sk)
    p = np.exp(s - top)
    den = p.sum(-1, keepdims=True) + (np.exp(sk - top) if c.sinks else 0)
    reference = np.einsum("bhqk,bhkd->bhqd", p / den, vd)

    if c.key is None:
        cpu = mx.fast.scaled_dot_product_attention(
            q,
            k,
            v,
            scale=scale,
            mask="causal" if c.causal else mask,
            sinks=sinks,
            stream=mx.cpu,
        )
    else:
        kf, vf = c.key, c.vfmt
        cpu = mx.fast.quantized_scaled_dot_product_attention(
            q,
            kp[0],
            kp[1],
            vp[0],
            vp[1],
            k_biases=kp[2] if kf.mode == "affine" else None,
            v_biases=vp[2] if vf.mode == "affine" else None,
            scale=scale,
            mask=mask,
            sinks=sinks,
            causal=c.causal,
            mode=kf.mode,
            bits=kf.bits,
            group_size=kf.group_size or c.D,
            v_mode=vf.mode,
            v_bits=vf.bits,
            v_group_size=vf.group_size or c.D,
            stream=mx.cpu,
        )
    cpu = _f64(_np(cpu), c.dtype)

    out = _garbage((c.B, c.Hq, c.Lq, c.D), _np(q).dtype)
    args = {
        "s": None,
        "d": None,
        "q": _queries(_np(q), c),
        "out": host.Arr(out, CXX_DTYPE[c.dtype]),
        "scale": scale,
        # MLX's eval_gpu passes causal only for more than one query.
        "do_causal": c.causal and c.Lq > 1,
        "mask": host.Opt(
            _arr(_np(mask), "bool" if c.mask == "bool" else c.dtype)
            if mask is not None
            else None
        ),
        "sinks": host.Opt(_arr(_np(sinks), c.dtype) if c.sinks else None),
    }
    if c.key is None:
        args.update(k=_arr(_np(k), c.dtype), v=_arr(_np(v), c.dtype))
    else:
        for name, parts, f in (("k", kp, c.key), ("v", vp, c.vfmt)):
            args[name] = _arr(_np(parts[0]), "uint32")
            sdt = "uint8" if f.mode == "mxfp4" else c.dtype
            args[f"{name}_scales"] = _arr(_np(parts[1]), sdt)
            args[f"{name}_biases"] = host.Opt(
                _arr(_np(parts[2]), c.dtype) if f.mode == "affine" else None
            )
        args["kf"] = _Format(c.key, c.D)
        args["vf"] = _Format(c.vfmt, c.D)
        if c.vfmt == c.key:  # the base's signature: one format
            args.update(
                mode=args["kf"].mode, bits=c.key.bits, group_size=args["kf"].group_size
            )
    return Inputs(c, args, reference, cpu, out)


class _Format:
    """fast::QuantizationFormat as the dispatch code reads it."""

    def __init__(self, f, D):
        self.mode, self.bits, self.group_size = MODES[f.mode], f.bits, f.group_size or D


class _Architecture(str):
    def back(self):
        return self[-1]


class _Device:
    def get_architecture(self):
        return _Architecture("applegpu_g15s")


class _Modes:
    pass


for _m in MODES.values():
    setattr(_Modes, _m, _m)


def helpers(tree, case):
    """Names the dispatch code calls that are not its parameters. The number
    of blocks, which MLX chooses per device, is the case's."""
    choices = block_choices(tree)
    if case.dispatch != "sdpa_vector" and case.blocks not in choices:
        raise host.HostError(
            f"{case.name}: MLX never uses {case.blocks} blocks ({choices})"
        )
    return {
        "select_sdpa_blocks": lambda *args: case.blocks,
        "get_type_string": _switch(
            tree, "mlx/backend/common/compiled.cpp", "get_type_string"
        ),
        "quant_mode_to_int": _switch(tree, DISPATCH, "quant_mode_to_int"),
        "QuantizationMode": _Modes,
        "bool_": "bool_",
        "float32": "float32",
        "std": type("std", (), {"to_string": staticmethod(str)}),
        "d": _Device(),
    }


def block_choices(tree):
    """The numbers of blocks that select_sdpa_blocks can return (the 2-pass
    kernels assume a multiple of 32)."""
    _, body = host.function_source(Path(tree) / DISPATCH, "select_sdpa_blocks")
    return sorted(
        {int(n) for n in re.findall(r"(?:return|blocks =|[?:])\s*\(?(\d+)\b", body)}
    )


def _switch(tree, path, name):
    table = host.switch_table(Path(tree) / path, name)
    return lambda key: table[key]


def errors(inputs):
    out = _f64(inputs.out, inputs.case.dtype)
    ref = inputs.reference
    top = np.abs(ref).max()

    def err(x):
        e = np.abs(x - ref).max() / top
        return float(e) if np.isfinite(e) else float("inf")

    return {"metal": err(out), "cpu": err(inputs.cpu)}


def describe(row):
    c = row["case"]
    status = "ok " if row["ok"] else "BAD"
    if "error" in row:
        return f"{status} {c.name} [{row['schedule']}]: {row['error']}"
    return (
        f"{status} {c.name} [{row['schedule']}]: metal {row['metal']:.1e} "
        f"cpu {row['cpu']:.1e} (tolerance {c.tolerance:.1e}, {row['seconds']:.2f} s)"
    )


# The case matrix ---------------------------------------------------------


def core_cases():
    """Every format on every dtype and head dimension the kernel has (the
    format is a function constant: these cost no compilation)."""
    out = []
    for dtype, D in itertools.product(DTYPES, (64, 128, 256)):
        for i, fmt in enumerate(FORMATS):
            out.append(
                Case(dtype=dtype, D=D, key=fmt, N=61 + D // 4 + 7 * i, seed=D + i)
            )
    return out


FORMATS = (TURBO4, TURBO3, AFFINE4, AFFINE4_32, AFFINE8, AFFINE8_32, MXFP4)
BOTH = ("rr", "sg_greedy")


def feature_cases():
    """Mixed formats, masks, sinks, causal, GQA, batches, several queries,
    lengths that are not multiples of the block (and fewer keys than
    blocks), more blocks, under both schedules."""
    out = []
    # Key and value formats that differ (the pairs the fused kernel has).
    for i, (k, v) in enumerate(
        [
            (AFFINE8_32, TURBO4),
            (AFFINE8, TURBO3),
            (TURBO4, TURBO3),
            (AFFINE8_32, TURBO3),
        ]
    ):
        out.append(
            Case(
                key=k, value=v, dtype=DTYPES[i % 3], D=(64, 128, 256, 128)[i], N=65 + i
            )
        )
    for dtype, fmt in zip(DTYPES, (TURBO4, TURBO3, TURBO4)):
        out += [
            Case(dtype=dtype, key=fmt, mask="bool", Lq=3, N=77, schedules=BOTH),
            Case(dtype=dtype, key=fmt, mask="additive", Lq=2, N=100, D=64),
            Case(dtype=dtype, key=fmt, sinks=True, N=50, D=256),
            Case(dtype=dtype, key=fmt, causal=True, Lq=5, N=70, schedules=BOTH),
        ]
    return out + [
        Case(key=TURBO3, Hq=8, Hkv=2, B=2, N=300, blocks=64, schedules=BOTH),
        Case(key=TURBO4, Hq=4, Hkv=2, B=2, Lq=2, N=90, mask="bool", dtype="float16"),
        Case(key=MXFP4, Hq=8, Hkv=1, Lq=4, N=129, mask="bool", sinks=True, D=64),
        Case(
            key=AFFINE4,
            Hq=8,
            Hkv=2,
            Lq=4,
            N=129,
            causal=True,
            sinks=True,
            dtype="float16",
        ),
        Case(
            key=TURBO4,
            Lq=8,
            N=31,
            dtype="bfloat16",
            mask="bool",
            sinks=True,
            schedules=BOTH,
        ),
        Case(key=TURBO4, Lq=8, Hq=4, Hkv=1, N=200, causal=True, dtype="float16", D=64),
        Case(key=TURBO3, Hq=32, Hkv=8, N=1500, blocks=128, dtype="bfloat16"),
        Case(
            key=TURBO4, Lq=4, N=90, q_transposed=True, dtype="float16", schedules=BOTH
        ),
        Case(key=AFFINE8_32, value=TURBO3, Lq=8, N=60, q_transposed=True, causal=True),
        Case(
            key=AFFINE8_32,
            value=TURBO4,
            Hq=16,
            Hkv=4,
            Lq=2,
            N=257,
            blocks=64,
            mask="additive",
            sinks=True,
        ),
    ]


def control_cases():
    """Upstream's float kernels, tested by upstream on real Macs: a failure
    here is the executor's."""
    return [
        Case(dispatch="sdpa_vector", Hq=4, Hkv=2, N=77, mask="bool", schedules=BOTH),
        Case(dispatch="sdpa_vector", dtype="float16", D=64, Lq=2, N=50, sinks=True),
        Case(
            dispatch="sdpa_vector",
            dtype="bfloat16",
            D=256,
            Lq=3,
            N=40,
            causal=True,
            q_transposed=True,
        ),
        Case(
            dispatch="sdpa_vector_2pass",
            Hq=8,
            Hkv=2,
            N=200,
            blocks=32,
            causal=True,
            Lq=3,
        ),
        Case(
            dispatch="sdpa_vector_2pass", dtype="bfloat16", D=256, N=70, mask="additive"
        ),
        Case(
            dispatch="sdpa_vector_2pass",
            dtype="float16",
            D=64,
            N=150,
            sinks=True,
            schedules=BOTH,
        ),
    ]


def base_cases():
    """The base's own quantized kernels (PR #3026: affine and MXFP4, one
    format for keys and values), for its tree."""
    return [
        Case(key=AFFINE4, N=77),
        Case(key=AFFINE8_32, dtype="float16", Lq=2, N=90, mask="bool", schedules=BOTH),
        Case(key=MXFP4, dtype="bfloat16", N=100, sinks=True),
        Case(key=AFFINE4_32, D=64, Lq=4, N=70, causal=True, Hq=8, Hkv=2),
    ]


def mutant_cases():
    """What a broken kernel must fail: float32, D=128, the paths a changed
    centroid, a lost barrier or a collective in divergent code reach."""
    return [
        Case(key=TURBO4, N=100, schedules=BOTH),
        Case(key=TURBO4, mask="bool", Lq=2, N=77, schedules=BOTH),
    ]


SETS = {
    "all": lambda: core_cases() + feature_cases() + control_cases(),
    "core": core_cases,
    "features": feature_cases,
    "controls": control_cases,
    "base": base_cases,
    "mutants": mutant_cases,
}


def describe_tree(tree):
    """`mlx/` at <commit> (<subject>), or the path."""
    tree = Path(tree)
    name = "mlx/" if tree == msl.MLX else str(tree)
    p = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h (%s)"],
        capture_output=True,
        text=True,
    )
    if p.returncode == 0 and p.stdout.strip():
        return f"`{name}` at {p.stdout.strip()}"
    return f"`{name}`"


def report(tree, rows, t_build, total, truncated=()):
    """results/metal_run.md; truncated: the bfloat16 runs again with a shim
    that converts float to bfloat by truncation."""
    lines = [
        "# Metal kernels executed under a CPU executor of Metal",
        "",
        "Written by `scripts/metal/metal_run.py --results`; do not edit by hand.",
        f"Tree: {describe_tree(tree)}. Machine: {platform.machine()} "
        f"{platform.system()}, {os.cpu_count()} CPUs. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "These kernels were executed on the CPU, from their own source, by the",
        "executor in `scripts/metal/`; none of this ran on Metal. Errors are",
        "max |out - ref| / max |ref| against a float64 reference from the same",
        "packed codes and scales; `cpu` is MLX's CPU kernel",
        "(`mx.fast.quantized_scaled_dot_product_attention`, or",
        "`mx.fast.scaled_dot_product_attention` for the float controls) on the",
        "same inputs.",
        "",
        f"{sum(r['ok'] for r in rows)} of {len(rows)} runs within tolerance; "
        f"build {t_build:.0f} s (0: cached), total {total:.0f} s.",
        "",
        "## Worst error per dtype",
        "",
        "| dtype | runs | executed Metal kernel | MLX CPU kernel | tolerance |",
        "|---|---|---|---|---|",
    ]
    for dtype in DTYPES:
        rs = [r for r in rows if r["case"].dtype == dtype and "metal" in r]
        if rs:
            lines.append(
                f"| {dtype} | {len(rs)} | {max(r['metal'] for r in rs):.2e} | "
                f"{max(r['cpu'] for r in rs):.2e} | {TOLERANCE[dtype]:.1e} |"
            )
    lines += [
        "",
        "## Worst error per dtype and format (keys-values)",
        "",
        "| dtype | format | runs | executed Metal kernel | MLX CPU kernel |",
        "|---|---|---|---|---|",
    ]
    groups = {}
    for r in rows:
        if "metal" in r:
            c = r["case"]
            fmt = "float" if c.key is None else f"{c.key.label()}-{c.vfmt.label()}"
            groups.setdefault((DTYPES.index(c.dtype), fmt), []).append(r)
    for (d, fmt), rs in sorted(groups.items()):
        lines.append(
            f"| {DTYPES[d]} | {fmt} | {len(rs)} | {max(r['metal'] for r in rs):.2e} | "
            f"{max(r['cpu'] for r in rs):.2e} |"
        )
    if truncated:
        rounded = [r for r in rows if r["case"].dtype == "bfloat16" and "metal" in r]
        cut = [r for r in truncated if "metal" in r]
        lines += [
            "",
            "## bfloat16: rounding against truncation in the shim",
            "",
            "Metal converts float to bfloat rounding to nearest even; the shim",
            "used to truncate. The same bfloat16 runs with each:",
            "",
            "| shim's conversion | runs | executed Metal kernel, range | MLX CPU kernel, range | over tolerance |",
            "|---|---|---|---|---|",
        ]
        for label, rs in (("round to nearest even", rounded), ("truncation", cut)):
            lines.append(
                f"| {label} | {len(rs)} | {min(r['metal'] for r in rs):.1e} to "
                f"{max(r['metal'] for r in rs):.1e} | {min(r['cpu'] for r in rs):.1e} to "
                f"{max(r['cpu'] for r in rs):.1e} | "
                f"{sum(r['metal'] > TOLERANCE['bfloat16'] for r in rs)} |"
            )
    lines += [
        "",
        "## Runs",
        "",
        "| case | schedule | metal | cpu | s | ok |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "metal" in r:
            lines.append(
                f"| {r['case'].name} | {r['schedule']} | {r['metal']:.2e} | {r['cpu']:.2e} | "
                f"{r['seconds']:.2f} | {'yes' if r['ok'] else 'NO'} |"
            )
        else:
            lines.append(
                f"| {r['case'].name} | {r['schedule']} | {r['error']} | | | NO |"
            )
    return "\n".join(lines) + "\n"
