"""The cases metal_run.py executes: inputs, float64 references and the
results report.

References are computed in float64 from the same packed codes and scales
the kernels read, with the formats taken from independent sources: the
TurboQuant codebooks from the project's Lloyd-Max solver
(scripts/turbo_codebooks.py), never from the kernel headers under test;
affine and MXFP4 from their definitions. MLX's CPU kernel runs on the same
inputs, for comparison. Quantized SDPA runs twice where the host code can
ask for the log-sum-exp (its dispatch functions take `lse`): without it,
and with it, when the log-sum-exp is checked too (lse_errors)."""

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
# The rules of the key and value formats the kernels take (not in the base).
FORMAT_TABLE = "mlx/backend/common/quantized_sdpa.h"
DTYPES = ("float32", "float16", "bfloat16")
# Worst error relative to max |reference| that passes, per dtype: 1.5-4x the
# worst seen (results/metal_run.md), and below what a wrong codebook entry, a
# lost barrier or a wrong lane gives. bfloat16's is also below what the
# shim's former truncating float-to-bfloat conversion gave (8.9e-3).
TOLERANCE = {"float32": 5e-6, "float16": 1.5e-3, "bfloat16": 7e-3}
# The log-sum-exp's error is absolute, in natural-log units: an error e
# scales the weight exp(lse) that combines the output with another part's by
# exp(e) ~ 1 + e, a relative error of the combination like the output's, so
# the output's tolerance holds for it too. Rows of no key must be -inf; a
# reference at or below LSE_NO_WEIGHT (finite: scores at float32's lowest
# value, under an additive mask that low) weighs nothing against any row that
# sees a key, and any kernel value at or below it (-inf too) is as good.
LSE_NO_WEIGHT = -1e30
MODES = {
    "affine": "Affine",
    "mxfp4": "Mxfp4",
    "mxfp8": "Mxfp8",
    "nvfp4": "Nvfp4",
    "turbo3": "Turbo3",
    "turbo4": "Turbo4",
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
# Every format that quantized SDPA accepts (mlx/fast.cpp).
ACCEPTED = (
    *(Fmt("affine", b, g) for g in (32, 64) for b in (4, 6, 8)),
    MXFP4,
    Fmt("nvfp4", 4, 16),
    Fmt("mxfp8", 8, 32),
    TURBO3,
    TURBO4,
)


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
    # Rows whose keys are all masked out (masked_rows, below): SDPA gives
    # them the mean of the values with a boolean mask, NaN with an additive
    # one (0 with sinks).
    fully_masked: bool = False
    # Fully masked rows of an additive mask filled with the dtype's lowest
    # finite value instead of -inf: SDPA gives them the mean of the values.
    mask_min: bool = False
    # Quantized keys and values (codes, scales, biases) stored as a
    # (B, N, Hkv, X) cache and transposed to (B, Hkv, N, X): MLX's eval_gpu
    # copies them unless their rows are packed (Hkv == 1); see copy_kv.
    kv_transposed: bool = False
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
        if self.dispatch.endswith("2pass"):
            parts.append(f"blocks{self.blocks}")
        parts += [
            x
            for x, on in (
                (self.mask, self.mask),
                ("sinks", self.sinks),
                ("causal", self.causal),
                ("qT", self.q_transposed),
                ("fullmask", self.fully_masked),
                ("maskmin", self.mask_min),
                ("kvT", self.kv_transposed),
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
    # The float64 queries, keys and values (dequantized, a head per KV head)
    # and the mask and sinks as MLX arrays, by name: what SDPA takes.
    floats: dict = field(default_factory=dict)
    buffers: dict = field(default_factory=dict)  # temporaries by C++ name
    copied: list = field(default_factory=list)  # inputs the host code copied
    # The log-sum-exp of quantized SDPA: the float64 reference and MLX's CPU
    # kernel's ([B, Hq, Lq]; None for the float controls or a CPU build
    # without return_lse), the buffer the kernels write ([B, Hq, Lq, 1]
    # float32), and the launches that ask for it (plan(); empty where the
    # host code cannot).
    lse_reference: np.ndarray = None
    cpu_lse: np.ndarray = None
    lse: np.ndarray = None
    lse_launches: list = field(default_factory=list)

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
        if self.lse is not None:
            self.lse[...] = _garbage(self.lse.shape, self.lse.dtype)
        for b in self.buffers.values():
            b.data[...] = _garbage(b.data.shape, b.data.dtype)


def _queries(q, c):
    if not c.q_transposed:
        return _arr(q, c.dtype)
    assert c.B == 1 or c.Hq == 1, "MLX copies other transposed queries"
    stored = np.ascontiguousarray(q.transpose(0, 2, 1, 3))
    return host.Arr(stored.transpose(0, 2, 1, 3), CXX_DTYPE[c.dtype])


def masked_rows(c):
    """The (batch, head, query) rows that a fully_masked case masks out: the
    first, and the last query of the last head (another head of the same
    keys, with GQA)."""
    rows = {(0, 0, 0), (c.B - 1, c.Hq - 1, c.Lq - 1)}
    return sorted(rows) if c.fully_masked else []


def sparse_rows(c):
    """(row, key) of the rows of a fully_masked case that keep one key only:
    the first key (that the blocks without it find reading the whole row's
    mask) and the last."""
    rows = [(0, h, 0) for h in (1, 2) if h < c.Hq and c.fully_masked]
    rows = [r for r in rows if r not in masked_rows(c)]
    return list(zip(rows, (0, c.N - 1)))


def _transposed_cache(a):
    """A (B, H, L, X) MLX array as a (B, L, H, X) cache seen as (B, H, L, X):
    the MLX array and the numpy view of the same bytes."""
    stored = mx.contiguous(a.transpose(0, 2, 1, 3))
    return stored.transpose(0, 2, 1, 3), _np(stored).transpose(0, 2, 1, 3)


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
        m[..., -1] = True  # no fully masked row but those asked for
        for row in masked_rows(c):
            m[row] = False
        for row, key in sparse_rows(c):
            m[row] = False
            m[(*row, key)] = True
        mask = mx.array(m)
    elif c.mask == "additive":
        mask = normal((c.B, c.Hq, c.Lq, c.N))
        fill = float(np.finfo(c.dtype if c.dtype != "bfloat16" else np.float32).min)
        fill = fill if c.mask_min else -np.inf
        for row in masked_rows(c):
            mask[row] = fill
        for row, key in sparse_rows(c):
            kept = mask[(*row, key)]
            mask[row] = fill
            mask[(*row, key)] = kept
    sinks = normal((c.Hq,)) if c.sinks else None

    gqa = c.Hq // c.Hkv
    qf = _f64(_np(q), c.dtype)
    if c.key is None:
        kd, vd = _f64(_np(k), c.dtype), _f64(_np(v), c.dtype)
    else:
        kp, vp = quantize(k, c.key), quantize(v, c.vfmt)
        if c.kv_transposed:
            kt = [_transposed_cache(a) for a in kp]
            vt = [_transposed_cache(a) for a in vp]
            kp, kp_np = [a for a, _ in kt], [n for _, n in kt]
            vp, vp_np = [a for a, _ in vt], [n for _, n in vt]
        else:
            kp_np, vp_np = [_np(a) for a in kp], [_np(a) for a in vp]
        kd = dequantize(kp_np, c.key, c.D, c.dtype)
        vd = dequantize(vp_np, c.vfmt, c.D, c.dtype)
    floats = dict(q=qf, k=kd, v=vd, mask=mask, sinks=sinks, scale=scale)
    kd, vd = np.repeat(kd, gqa, 1), np.repeat(vd, gqa, 1)
    s = np.einsum("bhqd,bhkd->bhqk", qf * scale, kd)
    lse_reference = logsumexp_reference(s, c, mask, sinks)
    if c.mask == "bool":
        # SDPA gives a key that a boolean mask masks out the lowest finite
        # score: a row whose keys are all masked out weighs them alike.
        s = np.where(np.array(mask), s, -np.finfo(np.float64).max)
    elif c.mask == "additive":
        s = s + _f64(_np(mask), c.dtype)
    if c.causal:
        allowed = np.arange(c.N)[None, :] <= (c.N - c.Lq + np.arange(c.Lq))[:, None]
        s = np.where(allowed, s, -np.inf)
    top = s.max(-1, keepdims=True)
    if c.sinks:
        sk = _f64(_np(sinks), c.dtype)[None, :, None, None]
        top = np.maximum(top, sk)
    with np.errstate(invalid="ignore"):  # rows of -inf scores are NaN
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
        cpu, cpu_lse = cpu_quantized_sdpa(q, kp, vp, c, scale, mask, sinks)
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
        # No log-sum-exp asked for; plan() asks for it in lse_launches.
        "lse": host.Opt(None),
    }
    if c.key is None:
        args.update(k=_arr(_np(k), c.dtype), v=_arr(_np(v), c.dtype))
        return Inputs(c, args, reference, cpu, out, floats)
    else:
        for name, parts, f in (("k", kp_np, c.key), ("v", vp_np, c.vfmt)):
            # Strided as the case has them (MLX may pass them uncopied).
            args[name] = host.Arr(parts[0], "uint32")
            sdt = "uint8" if f.mode == "mxfp4" else c.dtype
            args[f"{name}_scales"] = host.Arr(parts[1], CXX_DTYPE[sdt])
            args[f"{name}_biases"] = host.Opt(
                host.Arr(parts[2], CXX_DTYPE[c.dtype]) if f.mode == "affine" else None
            )
        args["kf"] = _Format(c.key, c.D)
        args["vf"] = _Format(c.vfmt, c.D)
        if c.vfmt == c.key:  # the base's signature: one format
            args.update(
                mode=args["kf"].mode, bits=c.key.bits, group_size=args["kf"].group_size
            )
    inputs = Inputs(c, args, reference, cpu, out, floats)
    inputs.lse_reference, inputs.cpu_lse = lse_reference, cpu_lse
    inputs.lse = _garbage((c.B, c.Hq, c.Lq, 1), np.float32)
    return inputs


def logsumexp_reference(s, c, mask, sinks):
    """The float64 log-sum-exp of every query row ([B, Hq, Lq]) of the
    scaled scores s: keys that a boolean or the causal mask hides are left
    out (-inf), an additive mask is added, the sink's logit is one more
    score; -inf for a row that sees no key (and has no sink)."""
    s = s.copy()
    if c.mask == "bool":
        s = np.where(np.array(mask), s, -np.inf)
    elif c.mask == "additive":
        s = s + _f64(_np(mask), c.dtype)
    if c.causal:
        allowed = np.arange(c.N)[None, :] <= (c.N - c.Lq + np.arange(c.Lq))[:, None]
        s = np.where(allowed, s, -np.inf)
    if c.sinks:
        sk = _f64(_np(sinks), c.dtype)[None, :, None, None]
        s = np.concatenate([np.broadcast_to(sk, s.shape[:-1] + (1,)), s], -1)
    top = s.max(-1)
    seen = top > -np.inf
    safe = np.where(seen, top, 0)[..., None]
    with np.errstate(divide="ignore"):
        return np.where(seen, safe[..., 0] + np.log(np.exp(s - safe).sum(-1)), -np.inf)


def cpu_quantized_sdpa(q, kp, vp, c, scale, mask, sinks):
    """MLX's CPU quantized SDPA on the same inputs: its output, and its
    log-sum-exp (return_lse) as [B, Hq, Lq] float64, or None for a CPU build
    without return_lse."""
    kf, vf = c.key, c.vfmt

    def run(**extra):
        return mx.fast.quantized_scaled_dot_product_attention(
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
            **extra,
        )

    try:
        out, lse = run(return_lse=True)
    except TypeError:
        return run(), None
    return out, np.array(lse).astype(np.float64)[..., 0]


def takes_lse(tree, dispatch):
    """Whether the dispatch function of the tree's host code can ask its
    kernels for the log-sum-exp (takes `lse`)."""
    params, _ = host.function_source(Path(tree) / DISPATCH, dispatch)
    return "lse" in host.parameters(params)


def lse_args(inputs):
    """The host arguments that ask for the log-sum-exp."""
    return dict(inputs.host_args, lse=host.Opt(host.Arr(inputs.lse, "float32")))


# The primitive whose eval_gpu copies quantized SDPA's inputs before
# quant_sdpa_vector_2pass dispatches them.
QUANT_EVAL = "QuantizedScaledDotProductAttention::eval_gpu"


def copy_kv(tree, inputs):
    """Copy the keys and values (codes, scales, biases) that MLX's eval_gpu
    copies before the dispatch: those that its kv_copy_unless, evaluated
    from the C++, turns down (copy_unless(kv_copy_unless, x_pre)). The
    copy is row-contiguous, as contiguous_copy_gpu makes it; the names of
    the copied inputs go to inputs.copied."""
    _, body = host.function_source(Path(tree) / DISPATCH, QUANT_EVAL)
    keep = host.lambda_function(
        body, "kv_copy_unless", {}, f"kv_copy_unless of {QUANT_EVAL}"
    )
    names = re.findall(
        r"\b(\w+)\s*=\s*copy_unless\(\s*kv_copy_unless\s*,\s*\*?\s*\w+\s*\)", body
    )
    if not names:
        raise host.HostError(f"{QUANT_EVAL} copies nothing with kv_copy_unless")
    args = inputs.host_args
    for name in names:
        a = args[name]
        arr = a.v if isinstance(a, host.Opt) else a
        if arr is None or keep(arr):
            continue
        copy = host.Arr(np.ascontiguousarray(arr.data), arr.dtype())
        args[name] = host.Opt(copy) if isinstance(a, host.Opt) else copy
        inputs.copied.append(name)


class _Format:
    """fast::QuantizationFormat as the dispatch code reads it."""

    def __init__(self, f, D):
        self.mode, self.bits, self.group_size = MODES[f.mode], f.bits, f.group_size or D

    def __eq__(self, other):
        return vars(self) == vars(other)

    def __repr__(self):
        return f"{self.mode}(group_size={self.group_size}, bits={self.bits})"


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
    if case.dispatch.endswith("2pass") and case.blocks not in choices:
        raise host.HostError(
            f"{case.name}: MLX never uses {case.blocks} blocks ({choices})"
        )
    ns = {
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
    try:  # the formats the fused kernel has (not in the base)
        ns["fast"] = _fast_table(tree)
        for name in ("quant_sdpa_kernel_reads", "quant_sdpa_kernel_has"):
            ns[name] = host.function(Path(tree) / DISPATCH, name, ns)
    except host.HostError:
        pass
    return ns


def _fast_table(tree):
    """The fast:: rules of the key and value formats the kernels take
    (mlx/backend/common/quantized_sdpa.h), as the dispatch code calls them."""
    path = Path(tree) / FORMAT_TABLE
    if not path.is_file():
        raise host.HostError(f"no {FORMAT_TABLE}")
    ns = {"QuantizationMode": _Modes}
    fast = type("fast", (), {})
    for name in ("qsdpa_gpu_mixed_pair", "qsdpa_gpu_pair"):
        ns[name] = host.function(path, name, ns)
        setattr(fast, name, staticmethod(ns[name]))
    return fast


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
    """max |x - ref| / max |ref| of the kernel's output and the CPU kernel's;
    inf where either is NaN and the other not, or where the kernel left an
    output unwritten (NaN as the garbage it started as)."""
    out = _f64(inputs.out, inputs.case.dtype)
    ref = inputs.reference
    nan = np.isnan(ref)
    top = np.abs(ref[~nan]).max() if (~nan).any() else 1.0
    size = inputs.out.dtype.itemsize
    garbage = (inputs.out.view(np.uint8).reshape(-1, size) == 0xFF).all(-1)

    def err(x):
        if (np.isnan(x) != nan).any():
            return float("inf")
        e = np.abs(x[~nan] - ref[~nan]).max(initial=0) / top
        return float(e) if np.isfinite(e) else float("inf")

    metal = float("inf") if garbage.any() else err(out)
    return {"metal": metal, "cpu": err(inputs.cpu)}


def lse_error(x, ref):
    """max |x - ref| of a log-sum-exp (natural-log units) over the rows that
    see a key; inf where x is NaN (garbage: a row left unwritten), where a
    row that sees no key (-inf) is not -inf, or where x and ref disagree on
    a row weighing nothing (LSE_NO_WEIGHT)."""
    nothing, low = ref == -np.inf, ref <= LSE_NO_WEIGHT
    if np.isnan(x).any() or ((x == -np.inf) != nothing)[nothing].any():
        return float("inf")
    if ((x <= LSE_NO_WEIGHT) != low).any():
        return float("inf")
    e = np.abs(x[~low] - ref[~low]).max(initial=0)
    return float(e) if np.isfinite(e) else float("inf")


def lse_errors(inputs):
    """The executed kernel's log-sum-exp, and the CPU kernel's, against the
    float64 reference (lse_error)."""
    row = {
        "lse": lse_error(inputs.lse[..., 0].astype(np.float64), inputs.lse_reference)
    }
    if inputs.cpu_lse is not None:
        row["cpu_lse"] = lse_error(inputs.cpu_lse, inputs.lse_reference)
    return row


def describe(row):
    c = row["case"]
    if isinstance(c, QuantCase):
        return describe_quant(row)
    status = "ok " if row["ok"] else "BAD"
    if "error" in row:
        return f"{status} {c.name} [{row['schedule']}]: {row['error']}"
    copied = row.get("copied")
    copied = f", {', '.join(copied)} copied by the host code" if copied else ""
    lse = ""
    if "lse" in row:
        lse = f", lse metal {row['lse']:.1e}"
        lse += f" cpu {row['cpu_lse']:.1e}" if "cpu_lse" in row else ""
    return (
        f"{status} {c.name} [{row['schedule']}]: metal {row['metal']:.1e} "
        f"cpu {row['cpu']:.1e}{lse} (tolerance {c.tolerance:.1e}{copied}, "
        f"{row['seconds']:.2f} s)"
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
    out += fully_masked_cases() + transposed_cache_cases()
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


def transposed_cache_cases():
    """Quantized caches stored (B, N, Hkv, X) and transposed: copied by the
    host code when Hkv > 1 (with B == 1 too), read in place when Hkv == 1;
    biases, another format for the values, masks and several queries."""
    kvt = dict(kv_transposed=True)
    return [
        Case(key=TURBO4, Hq=8, Hkv=4, N=90, schedules=BOTH, **kvt),
        Case(key=TURBO3, dtype="float16", B=2, Lq=2, N=70, mask="bool", **kvt),
        Case(key=TURBO4, dtype="bfloat16", D=64, N=120, causal=True, Lq=3, **kvt),
        Case(key=AFFINE8_32, value=TURBO4, dtype="bfloat16", Hkv=2, N=100, **kvt),
        Case(key=AFFINE4, D=64, Hq=4, Hkv=2, B=2, N=60, mask="additive", **kvt),
        Case(key=MXFP4, dtype="float16", D=256, Hq=2, Hkv=2, N=75, **kvt),
    ]


def fully_masked_cases():
    """Rows whose keys are all masked out, and rows that keep one key
    (sparse_rows), under boolean and additive masks: fewer keys than blocks
    hold (blocks without keys), many keys a block, more blocks, GQA,
    batches, several queries, sinks, values with biases."""
    fm = dict(fully_masked=True)
    return [
        Case(key=TURBO4, mask="bool", Lq=2, N=77, schedules=BOTH, **fm),
        Case(key=TURBO4, mask="additive", Lq=2, N=77, schedules=BOTH, **fm),
        Case(
            key=TURBO3,
            mask="bool",
            dtype="float16",
            D=64,
            Hq=8,
            Hkv=2,
            Lq=3,
            N=300,
            blocks=64,
            **fm,
        ),
        Case(
            key=TURBO3,
            mask="additive",
            dtype="bfloat16",
            D=256,
            Hkv=2,
            B=2,
            N=600,
            **fm,
        ),
        Case(key=AFFINE8_32, value=TURBO4, mask="bool", B=2, Lq=2, N=130, **fm),
        Case(key=AFFINE4, mask="bool", dtype="bfloat16", Hq=8, Hkv=4, N=90, **fm),
        Case(key=MXFP4, mask="additive", dtype="float16", D=64, Hq=8, N=50, **fm),
        Case(key=TURBO4, mask="bool", sinks=True, Lq=2, N=100, **fm),
        Case(key=TURBO4, value=TURBO3, mask="additive", sinks=True, Lq=2, N=100, **fm),
    ]


def full_cases():
    """The tiled kernel (quant_sdpa_full, more than 8 queries): query tiles
    that are whole and partial, key tiles that are whole and partial and
    keys that fill one tile only; the chunk-at-the-end causal offset, masks
    (rows fully masked and rows that keep one key), sinks, GQA 1, 4 and 8,
    batches, queries transposed as models make them, every format and
    dtype, head dimensions 64, 128 and 256."""
    full = dict(dispatch="quant_sdpa_full")
    out = []
    for i, (dtype, D) in enumerate(itertools.product(DTYPES, (64, 128, 256))):
        fmt = FORMATS[i % len(FORMATS)]
        out.append(Case(dtype=dtype, D=D, key=fmt, Lq=9 + 8 * i, N=70 + 9 * i, **full))
    for i, (k, v) in enumerate(
        [(AFFINE8_32, TURBO4), (AFFINE8, TURBO3), (TURBO4, TURBO3), (TURBO3, TURBO3)]
    ):
        out.append(
            Case(key=k, value=v, dtype=DTYPES[i % 3], Lq=16, N=40 + 17 * i, **full)
        )
    return out + [
        Case(key=TURBO4, Lq=33, N=33, causal=True, Hq=4, Hkv=1, **full),
        Case(key=TURBO4, Lq=100, N=300, causal=True, dtype="float16", **full),
        Case(key=TURBO3, Lq=9, N=600, causal=True, Hq=8, Hkv=1, B=2, **full),
        Case(key=AFFINE4, Lq=64, N=100, mask="bool", Hq=8, Hkv=2, **full),
        Case(key=TURBO4, Lq=16, N=90, mask="additive", dtype="bfloat16", **full),
        Case(key=TURBO4, Lq=12, N=64, sinks=True, D=256, dtype="float16", **full),
        Case(key=MXFP4, Lq=20, N=77, mask="bool", sinks=True, D=64, **full),
        Case(key=TURBO4, Lq=10, N=50, mask="bool", fully_masked=True, **full),
        Case(
            key=TURBO4,
            Lq=10,
            N=50,
            mask="additive",
            fully_masked=True,
            mask_min=True,
            **full,
        ),
        Case(
            key=TURBO3,
            value=TURBO3,
            Lq=10,
            N=50,
            mask="additive",
            fully_masked=True,
            Hq=4,
            Hkv=4,
            **full,
        ),
        Case(
            key=AFFINE8_32,
            value=TURBO4,
            Lq=33,
            N=120,
            q_transposed=True,
            causal=True,
            B=1,
            Hq=8,
            Hkv=2,
            **full,
        ),
        Case(key=TURBO4, Lq=17, N=70, kv_transposed=True, Hq=4, Hkv=2, **full),
        Case(key=TURBO4, Lq=16, N=40, schedules=("sg_greedy",), **full),
        # A prefill chunk: 512 queries at the end of 1024 keys.
        Case(key=TURBO4, Lq=512, N=1024, causal=True, Hq=2, dtype="float16", **full),
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
    centroid, a lost barrier or a collective in divergent code reach, fully
    masked rows, a transposed cache (whose copy the host code decides) and
    the tiled kernel's log-sum-exp."""
    return [
        Case(key=TURBO4, N=100, schedules=BOTH),
        Case(key=TURBO4, mask="bool", Lq=2, N=77, schedules=BOTH),
        Case(key=TURBO4, mask="bool", Lq=2, N=77, fully_masked=True),
        Case(key=TURBO4, mask="additive", Lq=2, N=77, fully_masked=True),
        Case(key=TURBO4, Hq=8, Hkv=4, N=90, kv_transposed=True),
        Case(
            key=TURBO4,
            Lq=10,
            N=50,
            mask="bool",
            fully_masked=True,
            dispatch="quant_sdpa_full",
        ),
    ]


SETS = {
    "all": lambda: core_cases() + feature_cases() + full_cases() + control_cases(),
    "full": full_cases,
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
    qrows = [r for r in rows if isinstance(r["case"], QuantCase)]
    rows = [r for r in rows if not isinstance(r["case"], QuantCase)]
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
        "Quantized SDPA runs twice: without the log-sum-exp, and with it",
        "(`return_lse`); the output's error is the worse of the two. The",
        "log-sum-exp's error (`lse`) is max |lse - ref| in natural-log units",
        "over the rows that see a key; rows that see none must be -inf. The",
        "output's tolerance holds for it: an error e scales the weight",
        "exp(lse) that combines the output with another part's by about 1 + e.",
        "",
        f"{sum(r['ok'] for r in rows + qrows)} of {len(rows + qrows)} runs pass "
        f"({len(rows)} of quantized SDPA and its controls, {len(qrows)} of "
        f"TurboQuant quantize and dequantize); "
        f"{sum('lse' in r for r in rows)} of "
        f"{sum(r['case'].key is not None for r in rows)} runs of quantized SDPA "
        f"checked the log-sum-exp; build {t_build:.0f} s "
        f"(0: cached), total {total:.0f} s.",
        "",
        "## Worst error per dtype",
        "",
        "| dtype | runs | executed Metal kernel | MLX CPU kernel | lse: Metal | lse: CPU | tolerance |",
        "|---|---|---|---|---|---|---|",
    ]

    def worst(rs, key):
        values = [r[key] for r in rs if key in r]
        return f"{max(values):.2e}" if values else ""

    for dtype in DTYPES:
        rs = [r for r in rows if r["case"].dtype == dtype and "metal" in r]
        if rs:
            lines.append(
                f"| {dtype} | {len(rs)} | {max(r['metal'] for r in rs):.2e} | "
                f"{max(r['cpu'] for r in rs):.2e} | {worst(rs, 'lse')} | "
                f"{worst(rs, 'cpu_lse')} | {TOLERANCE[dtype]:.1e} |"
            )
    lines += [
        "",
        "## Worst error per dtype and format (keys-values)",
        "",
        "| dtype | format | runs | executed Metal kernel | MLX CPU kernel | lse: Metal | lse: CPU |",
        "|---|---|---|---|---|---|---|",
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
            f"{max(r['cpu'] for r in rs):.2e} | {worst(rs, 'lse')} | "
            f"{worst(rs, 'cpu_lse')} |"
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
        "| case | schedule | metal | cpu | lse: metal | lse: cpu | s | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "metal" in r:
            lse = " | ".join(
                f"{r[k]:.2e}" if k in r else "" for k in ("lse", "cpu_lse")
            )
            lines.append(
                f"| {r['case'].name} | {r['schedule']} | {r['metal']:.2e} | {r['cpu']:.2e} | "
                f"{lse} | {r['seconds']:.2f} | {'yes' if r['ok'] else 'NO'} |"
            )
        else:
            lines.append(
                f"| {r['case'].name} | {r['schedule']} | {r['error']} | | | | | NO |"
            )
    if qrows:
        lines += quant_report(qrows)
    return "\n".join(lines) + "\n"


# TurboQuant quantize and dequantize ----------------------------------------
#
# These kernels are checked against MLX's CPU kernels on the same inputs
# (mx.quantize / mx.dequantize with stream=mx.cpu), not against a float64
# reference: the codes must be the CPU kernel's, bit for bit, except at ties
# (below), and the scales the CPU kernel's up to the rounding of the output
# dtype. Dequantized values must be the CPU kernel's, bit for bit.

QDISPATCH = "mlx/backend/metal/quantized.cpp"
QUANT_SOURCE = "turbo_quantized.metal"
EPS32 = 2.0**-24  # unit roundoff of float32


def tie_window(D):
    """Relative distance to a decision boundary within which a normalized
    coordinate x * sqrt(D) / ||x|| is a tie: its float32 value depends on
    the order in which the D squares of the norm are summed. Any order of
    a float32 sum of D terms of one sign is within (D - 1) * eps of the
    exact sum (Higham's gamma); the square root halves that, and the
    division, reciprocal, square root and product add a few roundings."""
    return (D + 4) * EPS32


def scale_tolerance(D):
    """Relative difference allowed between two float32 scales <x, c> / <c, c>
    summed in different orders: every x_i * c_i has the sign of x_i * x_i
    (a code's centroid has the sign of its coordinate), so both sums are
    of terms of one sign, each within gamma_D of exact, and each quotient
    within (2D + 1) eps of exact: two of them differ by (4D + 2) eps."""
    return (4 * D + 8) * EPS32


def ulp(v, dtype):
    """The spacing of dtype's values at |v| (float64 array in, out)."""
    a = np.abs(np.asarray(v, np.float64))
    if dtype == "float32":
        return np.spacing(a.astype(np.float32)).astype(np.float64)
    if dtype == "float16":
        return np.spacing(a.astype(np.float16)).astype(np.float64)
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    return np.where(a > 0, 2.0 ** (np.maximum(e, -126) - 7), 2.0**-133)


@dataclass(frozen=True)
class QuantCase:
    mode: str = "turbo4"
    dtype: str = "float32"
    D: int = 128
    rows: int = 37
    dispatch: str = "turbo_quantize"  # or "turbo_dequantize"
    # "transposed": the input is an (L, 3, D) array seen as (3, L, D), as a
    # (B, L, H, D) cache is quantized per head; MLX copies it first.
    layout: str = "contiguous"
    seed: int = 0
    schedules: tuple = ("rr",)

    @property
    def bits(self):
        return int(self.mode[-1])

    @property
    def name(self):
        parts = [self.dispatch, self.mode, self.dtype, f"D{self.D}", f"rows{self.rows}"]
        if self.layout != "contiguous":
            parts.append(self.layout)
        return "-".join(parts)


@dataclass
class QuantInputs:
    case: QuantCase
    host_args: dict
    x: np.ndarray  # the logical input (float64) of quantize
    cpu: list  # the CPU kernel's outputs, as numpy (bfloat16 as uint16)
    outs: list  # the buffers the Metal kernel writes, in the same order
    copied: dict = field(
        default_factory=dict
    )  # host arrays ensure_row_contiguous copied

    def temporaries(self, name, ns):
        return None

    def reset(self):
        for o in self.outs:
            o[...] = _garbage(o.shape, o.dtype)


def _quant_input(c):
    """rows x D values: normal, and from 7 rows on with a zero vector, large
    values (3000 sigma, and up to 60000, near float16's largest), a one-hot
    and a constant vector among them."""
    rng = np.random.default_rng(c.seed)
    x = rng.standard_normal((c.rows, c.D)).astype(np.float32)
    special = [
        np.zeros(c.D, np.float32),
        x[min(1, c.rows - 1)] * 3000,
        x[min(2, c.rows - 1)] * (60000 / np.abs(x[min(2, c.rows - 1)]).max()),
        np.eye(1, c.D, c.D // 3, dtype=np.float32)[0] * -7,
        np.full(c.D, -0.5, np.float32),
    ]
    for i, row in enumerate(special if c.rows >= 7 else []):
        x[i] = row
    return x


def _layout(a, c):
    """An mlx array of the case's logical shape in its layout, and the
    numpy view of the same bytes with the same strides."""
    if c.layout == "contiguous":
        return a, _np(a)
    assert c.layout == "transposed" and c.rows % 3 == 0
    stored = mx.contiguous(a.reshape(3, c.rows // 3, -1).transpose(1, 0, 2))
    return stored.transpose(1, 0, 2), _np(stored).transpose(1, 0, 2)


def prepare_quant(c):
    dt = getattr(mx, c.dtype)
    x = mx.array(_quant_input(c)).astype(dt)
    shape = (3, c.rows // 3) if c.layout == "transposed" else (c.rows,)

    def arr(a, dtype):
        return host.Arr(a, CXX_DTYPE[dtype])

    if c.dispatch == "turbo_quantize":
        xl, view = _layout(x, c)
        cpu = [_np(a) for a in mx.quantize(xl, mode=c.mode, stream=mx.cpu)]
        out = _garbage(shape + (c.D * c.bits // 32,), np.uint32)
        scales = _garbage(shape + (1,), _np(x).dtype)
        args = {
            "w_pre": arr(view, c.dtype),
            "out": arr(out, "uint32"),
            "scales": arr(scales, c.dtype),
            "bits": c.bits,
            "s": None,
        }
        outs = [out, scales]
    else:
        packed, sc = mx.quantize(x, mode=c.mode, stream=mx.cpu)
        pl, pview = _layout(packed, c)
        sl, sview = _layout(sc, c)
        cpu = [_np(mx.dequantize(pl, sl, mode=c.mode, stream=mx.cpu))]
        out = _garbage(shape + (c.D,), _np(x).dtype)
        args = {
            "w_pre": arr(pview, "uint32"),
            "scales_pre": arr(sview, c.dtype),
            "out": arr(out, c.dtype),
            "bits": c.bits,
            "s": None,
        }
        outs = [out]
    xf = _f64(_np(x), c.dtype).reshape(shape + (c.D,))
    return QuantInputs(c, args, xf, cpu, outs)


def quant_helpers(tree, inputs):
    """What the TurboQuant dispatch functions call besides their parameters.
    ensure_row_contiguous copies as MLX does (its copy kernel is upstream's
    and is not executed here) and records that it did."""

    def ensure_row_contiguous(x, d, s):
        if x.flags().row_contiguous:
            return x
        inputs.copied[len(inputs.copied)] = x.data.shape
        return host.Arr(np.ascontiguousarray(x.data), x.dtype())

    return {
        "ensure_row_contiguous": ensure_row_contiguous,
        "get_type_string": _switch(
            tree, "mlx/backend/common/compiled.cpp", "get_type_string"
        ),
        "std": type("std", (), {"to_string": staticmethod(str)}),
    }


def _boundaries(bits):
    c = turbo_codebook(bits)
    return (c[:-1] + c[1:]) / 2


def check_quant(inputs):
    """The comparison with the CPU kernel; a row of the results."""
    c = inputs.case
    if c.dispatch == "turbo_dequantize":
        got, ref = inputs.outs[0], inputs.cpu[0]
        differ = int(
            (got.view(np.uint8) != ref.view(np.uint8))
            .reshape(got.size, -1)
            .any(-1)
            .sum()
        )
        return {"ok": differ == 0, "values_differ": differ, "values": got.size}

    D, bits = c.D, c.bits
    x = inputs.x.reshape(-1, D)
    got = unpack(inputs.outs[0].reshape(-1, D * bits // 32), bits, D)
    ref = unpack(inputs.cpu[0].reshape(-1, D * bits // 32), bits, D)
    # Ties: coordinates within rounding of a boundary (not 0, which only the
    # sign of x decides).
    norm = np.sqrt((x * x).sum(-1, keepdims=True))
    u = np.where(norm > 0, x * np.sqrt(D) / np.where(norm > 0, norm, 1), 0)
    b = _boundaries(bits)
    b = b[b != 0]
    near = (np.abs(u[..., None] - b) <= tie_window(D) * np.abs(b)).any(-1)
    differ = got != ref
    bad_codes = differ & ~(near & (np.abs(got - ref) == 1))

    s_got = _f64(inputs.outs[1], c.dtype).reshape(-1)
    s_cpu = _f64(inputs.cpu[1], c.dtype).reshape(-1)
    # Where a tie went the other way, the scale that is least-squares
    # optimal for the codes chosen (float64) is the reference.
    cents = turbo_codebook(bits)[got]
    ls = (x * cents).sum(-1) / (cents * cents).sum(-1)
    rows_differ = differ.any(-1)
    s_ref = np.where(rows_differ, ls, s_cpu)
    tol = np.where(
        rows_differ,
        scale_tolerance(D) * np.abs(s_ref) + ulp(s_ref, c.dtype),
        (
            scale_tolerance(D) * np.abs(s_ref)
            if c.dtype == "float32"
            else ulp(s_ref, c.dtype)
        ),
    )
    with np.errstate(invalid="ignore"):
        s_err = np.abs(s_got - s_ref)
        bad_scales = ~(s_err <= tol)  # NaN is bad
    zero = norm[:, 0] == 0
    zero_ok = bool((s_got[zero] == 0).all())
    rel = np.where(s_ref != 0, s_err / np.where(s_ref != 0, np.abs(s_ref), 1), s_err)
    return {
        "ok": not bad_codes.any() and not bad_scales.any() and zero_ok,
        "codes": got.size,
        "codes_differ": int(differ.sum()),
        "codes_bad": int(bad_codes.sum()),
        "ties": int(near.sum()),
        "scales": s_got.size,
        "scales_equal": int((s_got == s_cpu).sum()),
        "scales_bad": int(bad_scales.sum()),
        "scale_rel": float(np.nanmax(rel)) if rel.size else 0.0,
        "zero_rows": int(zero.sum()),
        "zero_ok": zero_ok,
        "nan": int(np.isnan(s_got).sum()),
    }


def describe_quant(row):
    c = row["case"]
    status = "ok " if row["ok"] else "BAD"
    head = f"{status} {c.name} [{row['schedule']}]"
    if "error" in row:
        return f"{head}: {row['error']}"
    copied = " (input copied by the host code)" if row.get("copied") else ""
    if c.dispatch == "turbo_dequantize":
        return (
            f"{head}: {row['values'] - row['values_differ']} of {row['values']} "
            f"values equal to the CPU kernel's{copied} ({row['seconds']:.2f} s)"
        )
    return (
        f"{head}: codes {row['codes'] - row['codes_differ']}/{row['codes']} equal "
        f"({row['codes_differ']} differ, {row['codes_bad']} not at a tie; "
        f"{row['ties']} ties), scales {row['scales_equal']}/{row['scales']} equal, "
        f"{row['scales_bad']} beyond rounding (max rel {row['scale_rel']:.1e}), "
        f"zero vectors {'scale 0' if row['zero_ok'] else 'BAD'}{copied} "
        f"({row['seconds']:.2f} s)"
    )


def quant_cases():
    """Every mode x dtype x head dimension (multiples of 32, powers of two
    and not), odd row counts, and non-contiguous inputs, for both kernels."""
    out = []
    dims = (32, 64, 96, 128, 192, 256, 320)
    rows = (37, 5, 9, 33, 13, 1, 7)
    for i, (mode, dtype, D) in enumerate(
        itertools.product(("turbo3", "turbo4"), DTYPES, dims)
    ):
        r = rows[i % len(rows)]
        for dispatch in ("turbo_quantize", "turbo_dequantize"):
            out.append(QuantCase(mode, dtype, D, r, dispatch, seed=D + i))
    for i, (mode, dtype) in enumerate(itertools.product(("turbo3", "turbo4"), DTYPES)):
        for dispatch in ("turbo_quantize", "turbo_dequantize"):
            out.append(
                QuantCase(
                    mode,
                    dtype,
                    (128, 64, 96)[i % 3],
                    21,
                    dispatch,
                    "transposed",
                    seed=100 + i,
                )
            )
    # Many vectors, under both schedules (a SIMD group racing ahead of the
    # others in its threadgroup must not matter: they share nothing).
    out += [
        QuantCase("turbo4", "float16", 128, 203, schedules=("rr", "sg_greedy")),
        QuantCase("turbo3", "bfloat16", 256, 99, schedules=("rr", "sg_greedy")),
        QuantCase(
            "turbo4",
            "float32",
            128,
            203,
            "turbo_dequantize",
            schedules=("rr", "sg_greedy"),
        ),
    ]
    return out


SETS["quantize"] = quant_cases
SETS["sdpa"] = SETS["all"]
SETS["all"] = lambda: SETS["sdpa"]() + quant_cases()


def quant_report(rows):
    """The TurboQuant quantize and dequantize section of the results."""
    q = [r for r in rows if r["case"].dispatch == "turbo_quantize" and "codes" in r]
    d = [r for r in rows if r["case"].dispatch == "turbo_dequantize" and "values" in r]

    def total(rs, k):
        return sum(r[k] for r in rs)

    lines = [
        "",
        "## TurboQuant quantize and dequantize against the CPU kernels",
        "",
        "The `turbo_quantize` and `turbo_dequantize` kernels of",
        "`turbo_quantized.metal`, dispatched as `mlx/backend/metal/quantized.cpp`",
        "dispatches them, on the inputs given to MLX's CPU kernels",
        "(`mx.quantize` / `mx.dequantize`, `stream=mx.cpu`). Codes must be the",
        "CPU kernel's except at ties: a coordinate whose x * sqrt(D) / ||x||",
        "(float64) lies within (D + 4) * 2^-24 (relative) of a decision",
        "boundary other than 0, where the order in which a float32 norm is",
        "summed decides the code; there the two codes must be neighbours.",
        "Scales must equal the CPU kernel's up to one unit in the last place",
        "of the dtype (float32: (4D + 8) * 2^-24 relative); where a tie went",
        "the other way, the float64 least-squares scale of the chosen codes",
        "is the reference. Zero vectors must get scale 0. Dequantized values",
        "must be the CPU kernel's bit for bit. Inputs hold a zero vector,",
        "large values (3000 sigma; up to 60000), a one-hot and a constant vector.",
        "",
        f"- quantize: {sum(r['ok'] for r in q)} of {len(q)} runs pass; "
        f"{total(q, 'codes') - total(q, 'codes_differ')} of {total(q, 'codes')} "
        f"codes equal to the CPU kernel's, {total(q, 'codes_differ')} differ "
        f"({total(q, 'codes_bad')} not at a tie; {total(q, 'ties')} coordinates "
        f"are ties); {total(q, 'scales_equal')} of {total(q, 'scales')} scales "
        f"equal, {total(q, 'scales_bad')} beyond rounding; "
        f"{total(q, 'nan')} NaN.",
        "- scales equal to the CPU kernel's, by dtype: "
        + ", ".join(
            f"{t} {total(rs, 'scales_equal')} of {total(rs, 'scales')}"
            for t in DTYPES
            for rs in [[r for r in q if r["case"].dtype == t]]
        )
        + " (the others within rounding: float32 sums in another order differ "
        "in the last bits; float16 and bfloat16 at most one unit in the last "
        "place).",
        f"- dequantize: {sum(r['ok'] for r in d)} of {len(d)} runs pass; "
        f"{total(d, 'values') - total(d, 'values_differ')} of {total(d, 'values')} "
        "values equal to the CPU kernel's.",
        "",
        "| case | schedule | codes differ / ties | scales equal | max scale rel. diff | copied | s | ok |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"| {r['case'].name} | {r['schedule']} "
        if "error" in r:
            lines.append(f"{name}| {r['error']} | | | | | NO |")
        elif "codes" in r:
            lines.append(
                f"{name}| {r['codes_differ']} / {r['ties']} | "
                f"{r['scales_equal']}/{r['scales']} | {r['scale_rel']:.1e} | "
                f"{'yes' if r['copied'] else ''} | {r['seconds']:.2f} | "
                f"{'yes' if r['ok'] else 'NO'} |"
            )
        else:
            lines.append(
                f"{name}| {r['values_differ']} of {r['values']} values differ | | | "
                f"{'yes' if r['copied'] else ''} | {r['seconds']:.2f} | "
                f"{'yes' if r['ok'] else 'NO'} |"
            )
    return lines
