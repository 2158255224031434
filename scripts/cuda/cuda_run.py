#!/usr/bin/env python3
"""Execute the series' CUDA quantized SDPA kernels on the CPU, from their own
source, through the standalone checker (check_quantized_sdpa.cu).

The kernels' header (mlx/backend/cuda/quantized_sdpa.cuh, with the two
headers it includes from the tree) and the checker are rewritten, then
compiled as host C++ against run/cuda_shim.h and the fiber runtime of the
Metal executor (scripts/metal/runtime/runtime.cpp):

- each inline PTX statement `asm("opcode ..." : outputs : inputs)` becomes
  `ptx::opcode(operands)` (dots as underscores, "::" as "__", operands in
  the order the instruction names them), which the shim emulates across the
  warp;
- `extern __shared__ T name[];` becomes a pointer to the block's dynamic
  shared memory, and each `__shared__` declaration is followed by a call
  that fills the variable with 0xff bytes (NaNs) once per block;
- `kernel<<<grid, block[, smem[, stream]]>>>(args)` becomes
  `cuda_run::launch(grid, block, smem, kernel, args)`.

The checker then runs its checks (QSDPA_CHECKS: no timing) against its
float64 references: the tensor-core and CUDA-core decoding kernels for every
format, the tiled kernel for many queries, and the kernels that decode and
fold the chunks of keys cuDNN attends to (cuDNN's part on the host). A pass
means: executed under a CPU executor of the CUDA code, within the checker's
tolerance. It proves the
kernels' arithmetic and lane bookkeeping, not their speed, nor what the
shim does not model (see its header). The build is cached under
build/cuda-run/ and redone when a source changes.

    cuda_run.py                  build, then run every check under both
                                 schedules of the fiber runtime
    cuda_run.py --schedules 0    round-robin only
    cuda_run.py --dims 128       the checks of head dimension 128 only
    cuda_run.py --dims smoke     a few cases of each kernel (seconds)
    cuda_run.py --results results/cuda_run.md   also a summary in Markdown
    cuda_run.py --tree DIR       the kernels of another MLX tree
    cuda_run.py --checker FILE   another copy of the checker (with --tree: a
                                 variant's launch)
    cuda_run.py --build-only     build only; print the executable's path
    CUDA_RUN_FILL=0x7b cuda_run.py    fill shared and device memory with
                                 0x7b bytes, not NaNs
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIM = HERE / "run" / "cuda_shim.h"
RUNTIME = ROOT / "scripts" / "metal" / "runtime"
CHECKER = HERE / "check_quantized_sdpa.cu"
# The MLX headers the checker includes, and those they include.
HEADERS = [
    "mlx/backend/cuda/quantized_sdpa.cuh",
    "mlx/backend/cuda/steel/defines.cuh",
    "mlx/backend/common/turbo_codebooks.h",
]
CUDA_INCLUDE = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include"


class RewriteError(Exception):
    pass


def code_only(text):
    """`text` with comments, string and character literals blanked (same
    length, newlines kept), for finding code; RewriteError if one is open."""
    out, i, n = list(text), 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise RewriteError("an unterminated comment")
            j += 2
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise RewriteError(f"an unterminated literal at {i}")
            j += 1
            # Keep the quotes: a literal stays a token.
            for k in range(i + 1, j - 1):
                out[k] = " " if text[k] != "\n" else "\n"
            i = j
            continue
        else:
            i += 1
            continue
        for k in range(i, j):
            out[k] = " " if text[k] != "\n" else "\n"
        i = j
    return "".join(out)


def _closing(code, i, open_ch="(", close_ch=")"):
    """Index just past the bracket that closes the one at code[i] (code as
    code_only gives it)."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_ch:
            depth += 1
        elif code[j] == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
    raise RewriteError(f"no closing {close_ch!r} for the one at {i}")


def _split_top(text, code, sep):
    """Split text at `sep` outside brackets (found in code, its code_only)."""
    parts, depth, start = [], 0, 0
    for j, c in enumerate(code):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0 and "::" not in code[max(j - 1, 0) : j + 2]:
            parts.append(text[start:j])
            start = j + 1
    parts.append(text[start:])
    return parts


ASM = re.compile(r"\b(?:asm|__asm__)\s*(?:(?:volatile|__volatile__)\s*)?\(")
OPERAND = re.compile(r'^\s*"[=+]?[a-z]+"\s*\((.*)\)\s*$', re.S)


def rewrite_asm(text):
    """Each inline PTX statement as a call to its emulation in the shim."""
    code = code_only(text)
    out, pos = [], 0
    for m in ASM.finditer(code):
        if m.start() < pos:
            continue
        end = _closing(code, m.end() - 1)
        inner = slice(m.end(), end - 1)
        parts = _split_top(text[inner], code[inner], ":")
        codes = _split_top(code[inner], code[inner], ":")
        template = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', parts[0]))
        operands = []
        for part, pcode in zip(parts[1:3], codes[1:3]):
            for op in _split_top(part, pcode, ",") if part.strip() else []:
                om = OPERAND.match(op)
                if not om:
                    raise RewriteError(f"operand {op.strip()!r} in {template!r}")
                operands.append(om.group(1).strip())
        order = []
        for n in re.findall(r"%(\d+)", template):
            if int(n) not in order:
                order.append(int(n))
        if sorted(order) != list(range(len(operands))):
            raise RewriteError(f"operands of {template!r} not all named once")
        opcode = template.split()[0].rstrip(";")
        name = "ptx::" + opcode.replace("::", "__").replace(".", "_")
        out.append(text[pos : m.start()])
        out.append(f"{name}({', '.join(operands[i] for i in order)})")
        pos = end
    out.append(text[pos:])
    return "".join(out)


EXTERN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w:<> ]+?)\s+(\w+)\s*\[\s*\]\s*;"
)


def rewrite_extern_shared(text):
    return EXTERN_SHARED.sub(
        r"\1* \2 = reinterpret_cast<\1*>(cuda_run::dynamic_smem()); "
        r"cuda_run::fresh(\2, cuda_run::dynamic_smem_size);",
        text,
    )


SHARED = re.compile(r"(?<!extern )\b__shared__\b")
DECLARED = re.compile(r"(\w+)\s*(?:\[[^\]]*\]\s*)*$")


def rewrite_shared(text):
    """After each __shared__ declaration, a call that fills the variable
    once per block (cuda_run::fresh)."""
    code = code_only(text)
    out, pos = [], 0
    for m in SHARED.finditer(code):
        if m.start() < pos:
            continue
        depth, j = 0, m.end()
        while depth or code[j] != ";":
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        decl = code[m.end() : j]
        name = DECLARED.search(decl)
        if not name or len(_split_top(decl, decl, ",")) > 1:
            raise RewriteError(f"__shared__ declaration {text[m.start():j]!r}")
        out.append(text[pos : j + 1])
        out.append(f" cuda_run::fresh(&{name.group(1)}, sizeof({name.group(1)}));")
        pos = j + 1
    out.append(text[pos:])
    return "".join(out)


def rewrite_launches(text):
    """kernel<<<config>>>(args) as cuda_run::launch(config, kernel, args):
    the kernel is the expression that starts the statement."""
    code = code_only(text)
    out, pos = [], 0
    while (i := code.find("<<<", pos)) >= 0:
        start = max(code.rfind(c, pos, i) for c in ";{}") + 1
        kernel = text[start:i].strip()
        if not re.fullmatch(r"[\w:<>, .]+", kernel):
            raise RewriteError(f"a launch of {kernel!r}: not a kernel's name")
        j = code.index(">>>", i)
        config = [c.strip() for c in _split_top(text[i + 3 : j], code[i + 3 : j], ",")]
        if not 2 <= len(config) <= 4:
            raise RewriteError(f"launch configuration {text[i:j + 3]!r}")
        smem = config[2] if len(config) > 2 else "0"
        k = j + 3 + len(code[j + 3 :]) - len(code[j + 3 :].lstrip())
        if code[k] != "(":
            raise RewriteError(f"no arguments after {text[i:j + 3]!r}")
        end = _closing(code, k)
        args = text[k + 1 : end - 1].strip()
        lead = text[start:i][: len(text[start:i]) - len(text[start:i].lstrip())]
        out.append(text[pos:start] + lead)
        out.append(
            f"cuda_run::launch(dim3({config[0]}), dim3({config[1]}), {smem}, "
            f"{kernel}{', ' if args else ''}{args})"
        )
        pos = end
    out.append(text[pos:])
    return "".join(out)


def device_branches(text):
    """The kernels' device-only branches taken, as on an sm_90 GPU (the
    shim models what they call)."""
    return text.replace("defined(__CUDA_ARCH__)", "1").replace("__CUDA_ARCH__", "900")


def rewrite(text, device=True):
    """The rewritten source; `device`: take the device-only branches (the
    MLX headers; the checker's host code keeps its own)."""
    text = device_branches(text) if device else text
    return rewrite_launches(rewrite_extern_shared(rewrite_shared(rewrite_asm(text))))


def build(tree, out_dir, shim=SHIM, opt="-O2", main=CHECKER):
    """Rewrite and compile `main` (a CUDA source: the checker, which
    includes the kernels' headers from `tree`); returns its executable,
    cached in out_dir while nothing it is built from changes."""
    sources = {h: (tree / h).read_text() for h in HEADERS}
    sources[main.stem + ".cpp"] = main.read_text()
    fixed = [shim, RUNTIME / "runtime.cpp", RUNTIME / "mr_abi.h", Path(__file__)]
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + sources[name].encode())
    for f in fixed:
        digest.update(f.read_bytes())
    cxx = os.environ.get("CXX", "g++")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True)
    digest.update(f"{opt} {cxx} {version.stdout} {CUDA_INCLUDE}".encode())
    exe = out_dir / main.stem
    stamp = out_dir / f"{main.stem}.stamp"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return exe
    if not (CUDA_INCLUDE / "cuda_fp16.h").exists():
        sys.exit(f"cuda_run: no cuda_fp16.h in {CUDA_INCLUDE} (set CUDA_HOME)")
    src = out_dir / f"{main.stem}.src"
    shutil.rmtree(src, ignore_errors=True)
    for name, text in sources.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rewrite(text, device=name in HEADERS))
    # The kernels pun types through pointers, as nvcc lets them.
    flags = ["-std=c++20", opt, "-pthread", "-fno-strict-aliasing"]
    runtime = out_dir / "runtime.o"
    subprocess.run(
        [cxx, *flags, "-c", str(RUNTIME / "runtime.cpp"), "-o", str(runtime)],
        check=True,
    )
    subprocess.run(
        [cxx, *flags, f"-I{src}", f"-I{RUNTIME}", f"-I{CUDA_INCLUDE}"]
        + ["-include", str(shim), str(src / (main.stem + ".cpp")), str(runtime)]
        + ["-o", str(exe)],
        check=True,
    )
    stamp.write_text(digest.hexdigest())
    return exe


# The fiber runtime's schedules (CUDA_RUN_SCHEDULE): every thread takes a
# turn before any continues; or one warp runs until all its lanes wait,
# racing ahead of the others, which exposes a missing barrier.
SCHEDULES = {"0": "round-robin", "1": "a warp runs ahead"}

LINE = re.compile(
    r"^(ok|FAIL)\s+(?:(fp16|bf16|smoke) )?D=(\d+) (.*?)\s+rel err (\S+) lse err (\S+)$"
)


def kernel_of(line):
    """Which kernel a checker line is of, and its dtype."""
    m = LINE.match(line)
    kind, rest = m.group(2), m.group(4)
    if kind in ("fp16", "bf16"):
        return "tiled (many queries)", "float16" if kind == "fp16" else "bfloat16"
    if kind == "smoke" and "tiled" in rest:
        return "tiled (many queries)", "bfloat16" if "bf16" in rest else "float16"
    # The case's name follows its key length; tensor-core ones start "mma".
    mma = re.search(r"Lk=\d+ mma", rest) is not None
    return ("decode, tensor cores" if mma else "decode, CUDA cores"), "float16"


def write_results(path, lines, tree, args, seconds):
    """A Markdown summary of the checker's lines (schedule, line): runs and
    worst errors per kernel, dtype, head dimension and schedule."""
    rows = {}
    for schedule, line in lines:
        m = LINE.match(line)
        if not m:
            continue
        key = (*kernel_of(line), int(m.group(3)), SCHEDULES[schedule])
        r = rows.setdefault(key, [0, 0, 0.0, 0.0])
        r[0] += 1
        r[1] += m.group(1) == "ok"
        r[2] = max(r[2], float(m.group(5)))
        r[3] = max(r[3], float(m.group(6)))
    head = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h (%s)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    runs = sum(r[0] for r in rows.values())
    passed = sum(r[1] for r in rows.values())
    out = [
        "# CUDA kernels executed under a CPU executor of CUDA",
        "",
        "Written by `scripts/cuda/cuda_run.py --results`; do not edit by hand.",
        f"Tree: `{tree.name}/` at {head or 'an unversioned tree'}. Head dimensions:"
        f" {args.dims}. Build: {args.opt}. Machine: {os.uname().machine} Linux,"
        f" {os.cpu_count()} CPUs."
        f" Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "The checks of `scripts/cuda/check_quantized_sdpa.cu` (QSDPA_CHECKS),",
        "executed on the CPU from the kernels' own source by the executor in",
        "`scripts/cuda/`; none of this ran on a GPU. `out` is the outputs'",
        "relative RMS error against a float64 reference from the same packed",
        "codes and scales; `lse` the largest absolute error of the rows'",
        "log-sum-exps in natural-log units (rows that see no key must be -inf",
        "in both). Tolerances (float16, bfloat16): 2e-3 and 1.5e-2 for the",
        "outputs, 1e-2 and 7.5e-2 for the log-sum-exps (the checker's `Errors`",
        "says why).",
        "",
        f"{passed} of {runs} checks pass; total {seconds:.0f} s.",
        "",
        "| kernel | dtype | D | schedule | checks | pass | worst out | worst lse |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (kernel, dtype, d, sched), (n, ok, e, l) in sorted(rows.items()):
        out.append(
            f"| {kernel} | {dtype} | {d} | {sched} | {n} | {ok} | {e:.2e} | {l:.2e} |"
        )
    path.write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=ROOT / "mlx")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "cuda-run")
    ap.add_argument(
        "--checker", type=Path, default=CHECKER, help="another copy of the checker"
    )
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--shim", type=Path, default=SHIM, help="another model")
    ap.add_argument(
        "--opt", default="-O2", help="the compiler's optimization (-O0 builds fast)"
    )
    ap.add_argument(
        "--dims",
        default="64,128,256",
        help="head dimensions to check (64,128,256), or smoke",
    )
    ap.add_argument(
        "--schedules",
        default="0,1",
        help="the fiber runtime's schedules to run under, of " + str(SCHEDULES),
    )
    ap.add_argument("--results", type=Path, help="also write a Markdown summary")
    args = ap.parse_args()
    args.build_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    tree = args.tree.resolve()
    exe = build(
        tree, args.build_dir, args.shim.resolve(), args.opt, args.checker.resolve()
    )
    if args.build_only:
        print(exe)
        return 0
    rc, lines = 0, []
    for schedule in args.schedules.split(","):
        print(f"== schedule {schedule} ({SCHEDULES[schedule]})", flush=True)
        env = dict(os.environ, QSDPA_CHECKS=args.dims, CUDA_RUN_SCHEDULE=schedule)
        p = subprocess.Popen([str(exe)], env=env, stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append((schedule, line.rstrip("\n")))
        rc = rc or p.wait()
    if args.results:
        write_results(args.results, lines, tree, args, time.time() - start)
    return rc


if __name__ == "__main__":
    sys.exit(main())
