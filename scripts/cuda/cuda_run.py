#!/usr/bin/env python3
"""Execute the series' CUDA quantized SDPA kernels on the CPU, from their own
source, through the standalone checker (check_quantized_sdpa.cu).

The kernels' header (mlx/backend/cuda/quantized_sdpa.cuh, with the two
headers it includes from the tree) and the checker are rewritten, then
compiled as host C++ against run/cuda_shim.h and the fiber runtime of the
Metal executor (scripts/metal/runtime/runtime.cpp):

- each inline PTX statement `asm("opcode ..." : outputs : inputs)` becomes
  `ptx::opcode(operands)` (dots as underscores, operands in the order the
  instruction names them), which the shim emulates across the warp;
- `extern __shared__ T name[];` becomes a pointer to the block's dynamic
  shared memory, and each `__shared__` declaration is followed by a call
  that fills the variable with 0xff bytes (NaNs) once per block;
- `kernel<<<grid, block[, smem[, stream]]>>>(args)` becomes
  `cuda_run::launch(grid, block, smem, kernel, args)`.

The checker then runs its checks (QSDPA_CHECKS: no timing) against its
float64 references: the tensor-core and CUDA-core decoding kernels for every
format, the tiled kernel for many queries. A pass means: executed under a
CPU executor of the CUDA code, within the checker's tolerance. It proves the
kernels' arithmetic and lane bookkeeping, not their speed, nor what the
shim does not model (see its header). The build is cached under
build/cuda-run/ and redone when a source changes.

    cuda_run.py                  build, then run every check
    cuda_run.py --dims 128       the checks of head dimension 128 only
    cuda_run.py --dims smoke     a few cases of each kernel (seconds)
    cuda_run.py --tree DIR       the kernels of another MLX tree
    cuda_run.py --build-only     build only; print the executable's path
    CUDA_RUN_SCHEDULE=1 cuda_run.py   one warp runs until all its lanes
                                 wait (exposes missing barriers)
"""

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
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


def _closing(text, i, open_ch="(", close_ch=")"):
    """Index just past the bracket that closes the one at text[i]."""
    depth, j = 0, i
    while j < len(text):
        c = text[j]
        if c == '"':
            j = text.index('"', j + 1)
            while text[j - 1] == "\\":
                j = text.index('"', j + 1)
        elif c == open_ch:
            depth += 1
        elif c == close_ch:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise RewriteError(f"no closing {close_ch!r} for the one at {i}")


def _split_top(text, sep):
    """Split at `sep` outside brackets and strings."""
    parts, depth, start, j = [], 0, 0, 0
    while j < len(text):
        c = text[j]
        if c == '"':
            j = text.index('"', j + 1)
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append(text[start:j])
            start = j + 1
        j += 1
    parts.append(text[start:])
    return parts


ASM = re.compile(r"\basm\s*(?:volatile\s*)?\(")
OPERAND = re.compile(r'^\s*"[=+]?[a-z]+"\s*\((.*)\)\s*$', re.S)


def rewrite_asm(text):
    """Each inline PTX statement as a call to its emulation in the shim."""
    out, pos = [], 0
    for m in ASM.finditer(text):
        if m.start() < pos:
            continue
        end = _closing(text, m.end() - 1)
        parts = _split_top(text[m.end() : end - 1], ":")
        template = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', parts[0]))
        operands = []
        for part in parts[1:3]:
            for op in _split_top(part, ",") if part.strip() else []:
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
        name = "ptx::" + opcode.replace(".", "_")
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
    with 0xff bytes once per block (cuda_run::fresh)."""
    out, pos = [], 0
    for m in SHARED.finditer(text):
        if m.start() < pos:
            continue
        depth, j = 0, m.end()
        while depth or text[j] != ";":
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        name = DECLARED.search(text[m.end() : j])
        if not name:
            raise RewriteError(f"__shared__ declaration {text[m.start():j]!r}")
        out.append(text[pos : j + 1])
        out.append(f" cuda_run::fresh(&{name.group(1)}, sizeof({name.group(1)}));")
        pos = j + 1
    out.append(text[pos:])
    return "".join(out)


def rewrite_launches(text):
    """kernel<<<config>>>(args) as cuda_run::launch(config, kernel, args)."""
    out, pos = [], 0
    while (i := text.find("<<<", pos)) >= 0:
        start = max(text.rfind(c, pos, i) for c in ";{}") + 1
        kernel = text[start:i].strip()
        j = text.index(">>>", i)
        config = [c.strip() for c in _split_top(text[i + 3 : j], ",")]
        if not 2 <= len(config) <= 4:
            raise RewriteError(f"launch configuration {text[i:j + 3]!r}")
        smem = config[2] if len(config) > 2 else "0"
        k = j + 3 + len(text[j + 3 :]) - len(text[j + 3 :].lstrip())
        if text[k] != "(":
            raise RewriteError(f"no arguments after {text[i:j + 3]!r}")
        end = _closing(text, k)
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


def rewrite(text):
    return rewrite_launches(rewrite_extern_shared(rewrite_shared(rewrite_asm(text))))


def build(tree, out_dir, shim=SHIM, opt="-O2"):
    """Rewrite and compile; returns the checker's executable."""
    sources = {h: (tree / h).read_text() for h in HEADERS}
    sources["check_quantized_sdpa.cpp"] = CHECKER.read_text()
    fixed = [shim, RUNTIME / "runtime.cpp", RUNTIME / "mr_abi.h", Path(__file__)]
    digest = hashlib.sha256()
    for name in sorted(sources):
        digest.update(name.encode() + sources[name].encode())
    for f in fixed:
        digest.update(f.read_bytes())
    digest.update(opt.encode())
    exe = out_dir / "check_quantized_sdpa"
    stamp = out_dir / "stamp"
    if exe.exists() and stamp.exists() and stamp.read_text() == digest.hexdigest():
        return exe
    if not (CUDA_INCLUDE / "cuda_fp16.h").exists():
        sys.exit(f"cuda_run: no cuda_fp16.h in {CUDA_INCLUDE} (set CUDA_HOME)")
    src = out_dir / "src"
    shutil.rmtree(src, ignore_errors=True)
    for name, text in sources.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rewrite(text))
    cxx = os.environ.get("CXX", "g++")
    flags = ["-std=c++20", opt, "-pthread", "-w"]
    runtime = out_dir / "runtime.o"
    subprocess.run(
        [cxx, *flags, "-c", str(RUNTIME / "runtime.cpp"), "-o", str(runtime)],
        check=True,
    )
    subprocess.run(
        [
            cxx,
            *flags,
            "-DMLX_CUDA_SM_80_ENABLED",
            f"-I{src}",
            f"-I{RUNTIME}",
            f"-I{CUDA_INCLUDE}",
            "-include",
            str(shim),
            str(src / "check_quantized_sdpa.cpp"),
            str(runtime),
            "-o",
            str(exe),
        ],
        check=True,
    )
    stamp.write_text(digest.hexdigest())
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tree", type=Path, default=ROOT / "mlx")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "cuda-run")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--shim", type=Path, default=SHIM, help="another model")
    ap.add_argument(
        "--opt", default="-O2", help="the compiler's optimization (-O0 builds fast)"
    )
    ap.add_argument(
        "--dims", default="64,128,256", help="head dimensions to check (64,128,256)"
    )
    args = ap.parse_args()
    args.build_dir.mkdir(parents=True, exist_ok=True)
    exe = build(args.tree.resolve(), args.build_dir, args.shim.resolve(), args.opt)
    if args.build_only:
        print(exe)
        return 0
    env = dict(os.environ, QSDPA_CHECKS=args.dims)
    return subprocess.run([str(exe)], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
