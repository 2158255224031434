#!/usr/bin/env python3
"""Execute the series' Metal kernels on the CPU, from their own source, and
check their results against float64 references.

The kernels of scaled_dot_product_attention.metal (quantized SDPA and, as
controls, upstream's float sdpa_vector kernels) and of turbo_quantized.metal
(TurboQuant quantize and dequantize; DISPATCHERS lists them all) are
compiled with clang as C++ for OpenCL for x86-64 against
scripts/metal/shim/ (the model of the Metal language that check_metal.py
type-checks with) plus runtime/, which gives the shim's declarations bodies
and runs each threadgroup's threads as fibers (SIMD-group collectives,
barriers, threadgroup memory). The host side (kernel names, function
constants, buffers, grid and threadgroup sizes) is read from MLX's C++
dispatch code by host.py. The build is cached under build/metal-run/ and
redone only when a kernel source or the executor changes.

    metal_run.py                    run every case on mlx/
    metal_run.py --set quantize     only TurboQuant quantize and dequantize
    metal_run.py --tree DIR         the same on another MLX tree
    metal_run.py -k turbo4          the cases whose name contains turbo4
    metal_run.py --results FILE     also write the results as Markdown

A pass means: executed under a CPU executor of Metal, within tolerance of a
float64 reference computed from the same packed codes and scales (for
quantized SDPA, the output without and with the log-sum-exp asked for, and
the log-sum-exp, where the host code can ask for it); for
TurboQuant quantize and dequantize, the CPU kernels' results (codes bit for
bit but at ties, scales to the dtype's rounding, values bit for bit:
cases.check_quant). README.md ("Executing the Metal code") says what it
cannot prove. x86-64 Linux only.
"""

import argparse
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msl

try:
    import mlx.core  # noqa: F401
except ImportError:  # run with the project's virtualenv, which has it
    VENV_PYTHON = msl.ROOT / ".venv" / "bin" / "python"
    if __name__ != "__main__" or not VENV_PYTHON.exists():
        raise
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), __file__, *sys.argv[1:]])

import cases as C  # noqa: E402
import host  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNTIME = HERE / "runtime"
CACHE = msl.ROOT / "build" / "metal-run"
CACHE_ENTRIES = 8  # builds kept (the tree's and a few mutants')
# The host functions the cases run, with the C++ file that has them and the
# .metal file whose kernels they dispatch. A kernel that a later change adds
# gets an entry here and cases in cases.py.
DISPATCHERS = {
    "quant_sdpa_vector_2pass": (C.DISPATCH, "scaled_dot_product_attention.metal"),
    "quant_sdpa_full": (C.DISPATCH, "scaled_dot_product_attention.metal"),
    "sdpa_vector": (C.DISPATCH, "scaled_dot_product_attention.metal"),
    "sdpa_vector_2pass": (C.DISPATCH, "scaled_dot_product_attention.metal"),
    "turbo_quantize": (C.QDISPATCH, C.QUANT_SOURCE),
    "turbo_dequantize": (C.QDISPATCH, C.QUANT_SOURCE),
}
# Bump when the build below changes in a way the hashed files do not show.
BUILD_VERSION = "1"
FLAGS = [
    "--target=x86_64-unknown-linux-gnu",
    *msl.CLCPP,
    "-cl-single-precision-constant",
    "-Xclang",
    "-cl-ext=-cl_khr_fp64,-__opencl_c_fp64,+cl_khr_fp16,-__opencl_c_device_enqueue,"
    "+__opencl_c_program_scope_global_variables,+__opencl_c_generic_address_space",
    "-Wno-unknown-attributes",
    "-Wno-unknown-pragmas",
    "-Wno-duplicate-decl-specifier",
    "-Wno-c++17-extensions",
    "-Wno-c++20-extensions",
    "-fPIC",
    "-O1",
]
SCHEDULES = {"rr": 0, "sg_greedy": 1}


def _includes(src, shim):
    return [
        "-isystem",
        str(shim),
        "-I",
        str(src),
        "-I",
        str(RUNTIME),
        "-include",
        "metal_shim.h",
        "-include",
        "instantiate.h",
        "-include",
        "metal_exec.h",
    ]


def _digest(tree, kernels, shim):
    h = hashlib.sha256(f"{BUILD_VERSION}\0{msl.CLANG}\0{FLAGS}\0".encode())
    for source, names in sorted(kernels.items()):
        h.update(f"{source}:{sorted(names)}\0".encode())
    for base in (Path(tree) / msl.KERNELS, shim, RUNTIME):
        for f in sorted(p for p in base.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(base)).encode() + b"\0" + f.read_bytes())
    for name in msl.outside_headers(tree):
        h.update(name.encode() + b"\0" + (Path(tree) / name).read_bytes())
    return h.hexdigest()[:16]


def _run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise BuildError(
            f"{what} failed:\n{' '.join(map(str, cmd))}\n{p.stderr[-6000:]}"
        )
    return p.stdout


class BuildError(Exception):
    pass


def list_kernels(src, source, shim):
    """(host name, function, template arguments) of each kernel that the
    .metal file instantiates, and its function constants (type, name,
    index), from the preprocessed source."""
    pp = _run(
        [msl.CLANG, *FLAGS, *_includes(src, shim), "-DMR_LIST_KERNELS", "-E", "-P"]
        + [str(src / msl.KERNELS / source)],
        "preprocessing",
    )
    kernels = {}
    for names, func, targs in re.findall(
        r"__MR_KERNEL__((?:\s*\"[^\"]*\")+)\s*\|\s*(\w+)\s*\|(.*?)__MR_END__", pp, re.S
    ):
        kernels["".join(re.findall(r'"([^"]*)"', names))] = (
            func,
            " ".join(targs.split()),
        )
    fcs = re.findall(r"(\w+)\s+(\w+)\s*\[\[function_constant\((\d+)\)\]\]\s*;", pp)
    return pp, kernels, fcs


_POSITIONS = {
    "thread_position_in_grid": "MrPos",
    "threadgroup_position_in_grid": "MrPos",
    "threads_per_threadgroup": "MrPos",
    "threadgroups_per_grid": "MrPos",
    "thread_position_in_threadgroup": "MrPos",
    "threads_per_grid": "MrPos",
    "thread_index_in_threadgroup": "",
    "simdgroup_index_in_threadgroup": "",
    "thread_index_in_simdgroup": "",
    "threads_per_simdgroup": "",
    "simdgroups_per_threadgroup": "",
    "thread_index_in_quadgroup": "",
    "quadgroup_index_in_threadgroup": "",
}


def _kernel_parameters(pp, func, source):
    m = re.search(
        r"\[\[(?:kernel|mtl_shim_kernel)(?:\s*,[^\]]*)?\]\]\s*void\s+"
        + func
        + r"\s*\(",
        pp,
    )
    if not m:
        raise BuildError(f"no [[kernel]] {func} in {source}")
    close = host._match(pp, m.end() - 1, "(", ")")
    return [p.strip() for p in host._split_top(pp[m.end() : close], ",") if p.strip()]


def adapter(pp, source, name, func, targs):
    """extern "C" mr_k_<name>(buffers, constant buffers, attributes): calls
    the kernel template with each parameter bound by its attribute."""
    args = []
    for p in _kernel_parameters(pp, func, source):
        attr = re.search(r"\[\[(.*)\]\]", p).group(1).strip()
        if m := re.match(r"buffer\((\d+)\)", attr):
            args.append(f"MrBuf{{b[{m.group(1)}], c[{m.group(1)}]}}")
        elif attr in _POSITIONS:
            wrap = _POSITIONS[attr]
            args.append(f"{wrap}{{a->{attr}}}" if wrap else f"a->{attr}")
        else:
            raise BuildError(f"{name}: parameter {p!r} has no model in the executor")
    return (
        f'extern "C" void {symbol(name)}(device void* const device* b, '
        f"constant void* const device* c, const device MrAttrs* a) {{\n"
        f"  {func}<{targs}>({', '.join(args)});\n}}\n"
    )


def symbol(kernel):
    return "mr_k_" + re.sub(r"\W", "_", kernel)


def function_constant_table(fcs):
    lines = ["// Generated by metal_run.py: the kernels' function constants."]
    lines += [f"{t} {n};" for t, n, _ in fcs]
    entries = ", ".join(f"{{{i}, &{n}, sizeof({n})}}" for _, n, i in fcs)
    entries = entries or "{-1, nullptr, 0}"  # kernels without any
    lines.append(
        "namespace {\nstruct Fc { int index; void* p; unsigned long size; };\n"
        f"Fc fcs[] = {{{entries}}};\n}}\n"
        'extern "C" int mr_set_fc(int index, long value) {\n'
        "  for (auto& f : fcs)\n    if (f.index == index) {\n"
        "      if (f.size == 1) *(bool*)f.p = value != 0;\n"
        "      else *(int*)f.p = (int)value;\n      return 0;\n    }\n"
        "  return -1;\n}"
    )
    return "\n".join(lines) + "\n"


def build(tree, kernels, cache=CACHE, log=print, shim=msl.SHIM):
    """The executor library for these kernels of the tree ({.metal file:
    host names}); cached by content."""
    msl.require_clang()
    out = Path(cache) / _digest(tree, kernels, shim)
    lib = out / "libmetalrun.so"
    if lib.is_file():
        os.utime(out)
        return lib
    count = sum(len(names) for names in kernels.values())
    log(f"==> building the Metal executor for {count} kernels of {tree}")
    t0 = time.time()
    Path(cache).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache, prefix="tmp-"))
    try:
        src = msl.copy_kernels(tree, work / "src")
        objs, jobs, fcs = [], [], {}
        for source, names in sorted(kernels.items()):
            pp, available, constants = list_kernels(src, source, shim)
            missing = sorted(set(names) - set(available))
            if missing:
                raise BuildError(f"{source} of {tree} instantiates no {missing}")
            for t, n, i in constants:
                if fcs.setdefault(n, (t, n, i)) != (t, n, i):
                    raise BuildError(f"function constant {n} differs between sources")
            # Two translation units a source, compiled side by side.
            names = sorted(names)
            for unit in (u for u in (names[0::2], names[1::2]) if u):
                tu = work / f"kernels{len(objs)}.cpp"
                tu.write_text(
                    f'#include "{msl.KERNELS}/{source}"\n'
                    + "".join(adapter(pp, source, n, *available[n]) for n in unit)
                )
                objs.append(tu.with_suffix(".o"))
                jobs.append(
                    [msl.CLANG, *FLAGS, *_includes(src, shim), "-c", tu, "-o", objs[-1]]
                )
        fcs = list(fcs.values())
        (work / "fc.cpp").write_text(function_constant_table(fcs))
        for name in ("fc", "runtime"):
            cpp = work / "fc.cpp" if name == "fc" else RUNTIME / "runtime.cpp"
            objs.append(work / f"{name}.o")
            jobs.append(
                [
                    msl.CLANG,
                    "-std=c++17",
                    "-O1",
                    "-fPIC",
                    "-I",
                    RUNTIME,
                    "-c",
                    cpp,
                    "-o",
                    objs[-1],
                ]
            )
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda j: _run(["nice", *map(str, j)], "compiling"), jobs))
        _run(
            [msl.CLANG, "-shared", "-o", work / "libmetalrun.so", *objs, "-lm"],
            "linking",
        )
        (work / "kernels.txt").write_text(
            "".join(
                f"{s} {n}\n" for s, ns in sorted(kernels.items()) for n in sorted(ns)
            )
        )
        shutil.rmtree(work / "src")
        try:
            work.rename(out)
        except OSError:  # another run built the same meanwhile: use that
            if not lib.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _prune(Path(cache))
    log(f"==> built in {time.time() - t0:.0f} s: {lib}")
    return lib


def _prune(cache):
    entries = sorted(
        (p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("tmp-")),
        key=lambda p: p.stat().st_mtime,
    )
    for p in entries[:-CACHE_ENTRIES]:
        shutil.rmtree(p, ignore_errors=True)


class Executor:
    """The built library: dispatch a kernel over a grid."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path))
        self.lib.mr_dispatch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_uint),
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_int,
        ]
        self.lib.mr_error.restype = ctypes.c_char_p
        self.lib.mr_set_fc.argtypes = [ctypes.c_int, ctypes.c_long]

    def launch(self, launch, schedule="rr"):
        for index, value in launch.function_constants.items():
            if self.lib.mr_set_fc(index, int(value)) != 0:
                raise ExecutionError(f"{launch.kernel}: no function constant {index}")
        ptrs = (ctypes.c_void_p * 32)()
        for index, buf in launch.buffers.items():
            if min(buf.strides, default=0) < 0:
                raise ExecutionError(f"{launch.kernel}: buffer {index} runs backwards")
            ptrs[index] = buf.ctypes.data
        try:
            fn = getattr(self.lib, symbol(launch.kernel))
        except AttributeError:
            raise ExecutionError(f"the executor was not built with {launch.kernel}")
        rc = self.lib.mr_dispatch(
            ctypes.cast(fn, ctypes.c_void_p),
            ptrs,
            (ctypes.c_uint * 3)(*launch.grid),
            (ctypes.c_uint * 3)(*launch.group),
            SCHEDULES[schedule],
        )
        if rc != 0:
            raise ExecutionError(f"{launch.kernel}: {self.lib.mr_error().decode()}")


class ExecutionError(Exception):
    pass


def plan(tree, case):
    """The case's inputs, reference and the launches MLX's C++ makes; for
    quantized SDPA whose host code can ask for the log-sum-exp, also the
    launches that do, in inputs.lse_launches."""
    quantized_sdpa = case.dispatch.startswith("quant_sdpa")
    if isinstance(case, C.QuantCase):
        inputs = C.prepare_quant(case)
        helpers = C.quant_helpers(tree, inputs)
    else:
        inputs = C.prepare(case)
        if quantized_sdpa:  # eval_gpu's copies
            C.copy_kv(tree, inputs)
        helpers = C.helpers(tree, case)
    path = Path(tree) / DISPATCHERS[case.dispatch][0]
    launches = host.follow(
        path, case.dispatch, inputs.host_args, helpers, inputs.temporaries
    )
    if quantized_sdpa and C.takes_lse(tree, case.dispatch):
        inputs.lse_launches = host.follow(
            path, case.dispatch, C.lse_args(inputs), helpers, inputs.temporaries
        )
    return inputs, launches


def run_case(executor, inputs, launches, schedule):
    """Run the launches; the case's row of results (errors, or for TurboQuant
    quantize and dequantize the comparison with the CPU kernel, and ok)."""
    inputs.reset()
    t0 = time.time()
    for launch in launches:
        executor.launch(launch, schedule)
    dt = time.time() - t0
    if isinstance(inputs.case, C.QuantCase):
        row = C.check_quant(inputs)
        row["copied"] = bool(inputs.copied)
    else:
        row = C.errors(inputs)
        if inputs.lse_launches:
            # Again, asking for the log-sum-exp: the output must be as good.
            inputs.reset()
            t0 = time.time()
            for launch in inputs.lse_launches:
                executor.launch(launch, schedule)
            dt += time.time() - t0
            row["metal"] = max(row["metal"], C.errors(inputs)["metal"])
            row.update(C.lse_errors(inputs))
        row["ok"] = row["metal"] <= inputs.case.tolerance
        row["ok"] = row["ok"] and row.get("lse", 0.0) <= inputs.case.tolerance
        row["copied"] = list(inputs.copied)
    row["seconds"] = dt
    return row


def run(tree, cases, log=print, cache=CACHE, shim=msl.SHIM):
    """Build, then run every case under each of its schedules. Returns the
    rows of results (one per case and schedule), the build time and the
    total time."""
    t0 = time.time()
    plans = [(case, *plan(tree, case)) for case in cases]
    kernels = {}
    for case, inputs, launches in plans:
        source = DISPATCHERS[case.dispatch][1]
        launches = launches + getattr(inputs, "lse_launches", [])
        kernels.setdefault(source, set()).update(launch.kernel for launch in launches)
    t1 = time.time()
    executor = Executor(build(tree, kernels, cache, log, shim))
    t_build = time.time() - t1
    rows = []
    for case, inputs, launches in plans:
        for schedule in case.schedules:
            row = {"case": case, "schedule": schedule}
            try:
                row.update(run_case(executor, inputs, launches, schedule))
            except ExecutionError as e:
                row.update(ok=False, error=str(e), seconds=0.0)
            rows.append(row)
            log(C.describe(row))
    return rows, t_build, time.time() - t0


def truncating_shim(scratch):
    """A copy of the shim whose float-to-bfloat conversion truncates, as it
    did before: for the results' comparison."""
    shim = Path(scratch) / "shim"
    shutil.copytree(msl.SHIM, shim)
    header = shim / "metal_shim.h"
    text = header.read_text()
    rounding = "bits_(from_float(static_cast<float>(x)))"
    if text.count(rounding) != 1:
        raise BuildError(f"metal_shim.h no longer has {rounding}")
    truncating = "bits_(__builtin_bit_cast(uint32_t, static_cast<float>(x)) >> 16)"
    header.write_text(text.replace(rounding, truncating))
    return shim


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tree", type=Path, default=msl.MLX, help="an MLX source tree")
    ap.add_argument("-k", dest="select", help="run the cases whose name contains this")
    ap.add_argument(
        "--set", default="all", choices=sorted(C.SETS), help="a set of cases"
    )
    ap.add_argument("--results", type=Path, help="write the results as Markdown")
    ap.add_argument(
        "--rebuild", action="store_true", help="build afresh (to time a cold build)"
    )
    args = ap.parse_args(argv)
    tree = Path(os.path.abspath(args.tree))
    cases = [c for c in C.SETS[args.set]() if not args.select or args.select in c.name]
    if not cases:
        msl.die("no case selected")
    try:
        if args.rebuild:
            with tempfile.TemporaryDirectory() as scratch:
                rows, t_build, total = run(tree, cases, cache=scratch)
        else:
            rows, t_build, total = run(tree, cases)
    except (BuildError, host.HostError) as e:
        msl.die(str(e))
    failed = [r for r in rows if not r["ok"]]
    msl.note(
        f"{len(rows) - len(failed)} of {len(rows)} runs within tolerance "
        f"(build {t_build:.0f} s, total {total:.0f} s)"
    )
    if args.results:
        bf16 = [
            c for c in cases if c.dtype == "bfloat16" and not isinstance(c, C.QuantCase)
        ]
        truncated = []
        if bf16:
            msl.note("the bfloat16 cases again, with a truncating shim")
            with tempfile.TemporaryDirectory() as scratch:
                shim = truncating_shim(scratch)
                truncated, _, _ = run(tree, bf16, log=lambda line: None, shim=shim)
        args.results.write_text(C.report(tree, rows, t_build, total, truncated))
        msl.note(f"wrote {args.results}")
    if failed:
        msl.die(
            "Metal kernels out of tolerance or failing: "
            + ", ".join(r["case"].name for r in failed)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
