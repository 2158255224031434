"""The series' CUDA kernels executed on the CPU from their own source
(scripts/cuda/cuda_run.py), through the standalone checker, and the source
rewriting and warp model that make it possible."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "cuda"))
import cuda_run  # noqa: E402

TOOL = ROOT / "scripts" / "cuda" / "cuda_run.py"
MLX = Path(os.environ.get("MLX_TREE") or ROOT / "mlx").resolve()
KERNELS = "mlx/backend/cuda/quantized_sdpa.cuh"

needs_cuda_headers = pytest.mark.skipif(
    not (cuda_run.CUDA_INCLUDE / "cuda_fp16.h").exists(),
    reason=f"no CUDA headers in {cuda_run.CUDA_INCLUDE}",
)


# The rewriting ----------------------------------------------------------------


def test_inline_ptx_becomes_a_call_with_operands_in_the_instructions_order():
    text = 'asm volatile("op.x.y %1, [%0];" : "=r"(y[0]) : "r"(f(a, b)));'
    assert cuda_run.rewrite_asm(text) == "ptx::op_x_y(f(a, b), y[0]);"
    mma = (
        'asm volatile("mma.sync.aligned.m16n8k16 {%0, %1}, {%2}, {%0, %1};"'
        ' : "+f"(d[0]), "+f"(d[1]) : "r"(a));'
    )
    assert cuda_run.rewrite_asm(mma) == (
        "ptx::mma_sync_aligned_m16n8k16(d[0], d[1], a);"
    )


def test_inline_ptx_that_does_not_name_every_operand_is_refused():
    with pytest.raises(cuda_run.RewriteError, match="not all named"):
        cuda_run.rewrite_asm('asm("op %0;" : "=r"(y) : "r"(x));')


def test_launches_become_calls_and_shared_memory_is_filled_per_block():
    text = (
        "auto go = [&]() {\n"
        "  ns::kernel<T, D>\n      <<<dim3(a, b), 32, smem, stream>>>(x, f(y, z));\n"
        "  k2<<<n, m>>>();\n"
        "  pass1.kernel<<<n, 64>>>(x);\n}"
    )
    assert cuda_run.rewrite_launches(text) == (
        "auto go = [&]() {\n"
        "  cuda_run::launch(dim3(dim3(a, b)), dim3(32), smem, ns::kernel<T, D>, "
        "x, f(y, z));\n"
        "  cuda_run::launch(dim3(n), dim3(m), 0, k2);\n"
        "  cuda_run::launch(dim3(n), dim3(64), 0, pass1.kernel, x);\n}"
    )
    shared = "__shared__ union {\n  float a[4]; int b;\n} smem;\nx = 1;"
    assert cuda_run.rewrite_shared(shared).endswith(
        "} smem; cuda_run::fresh(&smem, sizeof(smem));\nx = 1;"
    )
    dyn = "extern __shared__ __align__(16) unsigned char raw[];"
    assert cuda_run.rewrite_extern_shared(dyn) == (
        "unsigned char* raw = reinterpret_cast<unsigned char*>"
        "(cuda_run::dynamic_smem()); cuda_run::fresh(raw, "
        "cuda_run::dynamic_smem_size);"
    )


def test_every_inline_ptx_of_the_kernels_has_an_emulation():
    rewritten = cuda_run.rewrite((MLX / KERNELS).read_text())
    shim = cuda_run.SHIM.read_text()
    calls = set(cuda_run.re.findall(r"ptx::(\w+)\(", rewritten))
    assert {"mma_sync_aligned_m16n8k16_row_col_f32_f16_f16_f32"} <= calls
    for name in calls:
        assert cuda_run.re.search(rf"\b{name}\b", shim), name
    code = cuda_run.code_only(rewritten)
    assert not cuda_run.re.search(r"\b(__)?asm(__)?\b", code)
    # The device-only branches are taken.
    assert "__CUDA_ARCH__" not in rewritten


def test_comments_and_strings_are_not_rewritten():
    text = (
        '// a table in __shared__ memory, asm("x %0;" : "=r"(y))\n'
        'const char* s = "k<<<1, 2>>>(x);";\nfloat y = a[i];\n'
    )
    assert cuda_run.rewrite(text) == text


def test_what_the_rewriter_cannot_follow_is_refused():
    with pytest.raises(cuda_run.RewriteError, match="declaration"):
        cuda_run.rewrite_shared("__shared__ float a[4], b[8];")
    with pytest.raises(cuda_run.RewriteError, match="not a kernel"):
        cuda_run.rewrite_launches("if (c) k<<<1, 32>>>(x);")
    with pytest.raises(cuda_run.RewriteError, match="unterminated"):
        cuda_run.code_only('x = "abc;')


# The executor -----------------------------------------------------------------


def run_tool(*args, timeout=1800, env=None):
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def checked(p):
    lines = p.stdout.splitlines()
    return [l for l in lines if l.startswith("ok ")], [
        l for l in lines if l.startswith("FAIL")
    ]


@needs_cuda_headers
def test_the_kernels_pass_under_the_executor(tmp_path):
    """Every check of head dimension 64 (decoding on tensor cores and CUDA
    cores for every format pair, masks, sinks, GQA, B=8, 20,011 keys; the
    tiled kernel; cuDNN's chunks, decoded and folded by the kernels, of a
    cache longer and shorter than a chunk; the log-sum-exps), then the smoke
    set at 128 (with the last thread block's merge of 64 and 46 chunks)
    under both schedules, and with memory filled with finite values, not
    NaNs."""
    build = ["--build-dir", str(tmp_path / "b")]
    p = run_tool(*build, "--dims", "64", "--schedules", "0")
    ok, failed = checked(p)
    assert p.returncode == 0 and not failed, p.stdout[-3000:] + p.stderr[-3000:]
    assert len(ok) >= 330, len(ok)
    assert "0 checks failed" in p.stdout
    assert any(" mma long " in l for l in ok)
    assert any("fp16 D=64" in l and "chunks" in l for l in ok)
    assert all(" lse err " in l for l in ok if " rel err " in l)
    assert any("fp16 D=64" in l and "cudnn plan" in l for l in ok)
    assert sum("fp16 D=64" in l and "cudnn short" in l for l in ok) == 2
    p = run_tool(*build, "--dims", "smoke")
    ok, failed = checked(p)
    assert p.returncode == 0 and not failed and len(ok) == 34, p.stdout + p.stderr
    assert any(" mma chunks " in l for l in ok) and any(
        " chunks bool " in l for l in ok
    )
    assert any(" cudnn chunks " in l for l in ok) and any(
        " cudnn bf16 " in l for l in ok
    )
    assert any(" cudnn short " in l for l in ok)
    env = dict(os.environ, CUDA_RUN_FILL="0x7b")
    p = run_tool(*build, "--dims", "smoke", "--schedules", "0", env=env)
    ok, failed = checked(p)
    assert p.returncode == 0 and not failed and len(ok) == 17, p.stdout + p.stderr


INSTRUCTIONS = ROOT / "python_tests" / "cuda_run_instructions.cu"


def instructions(tmp_path, shim=cuda_run.SHIM):
    return cuda_run.build(MLX, tmp_path / "i", shim, "-O0", main=INSTRUCTIONS)


@needs_cuda_headers
def test_the_model_of_each_instruction_is_the_isas(tmp_path):
    exe = instructions(tmp_path)
    p = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    names = ("mma m16n8k16 f16", "mma m16n8k16 bf16", "ldmatrix x4 trans")
    for name in names + ("cp.async groups", "ld.global.nc.L1::no_allocate.v4.u32"):
        assert f"ok {name}\n" in p.stdout
    assert p.stdout.count("ok ") == 9


@needs_cuda_headers
@pytest.mark.parametrize(
    "misuse, message",
    [
        ("local-as-shared", "not to shared memory"),
        ("past-the-end", "outside every shared variable"),
        ("misaligned-ldmatrix", "misaligned shared memory access"),
        ("dynamic-smem-unraised", "cudaFuncSetAttribute raises it"),
    ],
)
def test_misused_shared_memory_is_refused(tmp_path, misuse, message):
    exe = instructions(tmp_path)
    p = subprocess.run([str(exe), misuse], capture_output=True, text=True)
    assert p.returncode != 0 and message in p.stderr, p.stdout + p.stderr
    assert "not refused" not in p.stdout


# Broken kernels and a broken model must fail: (file, text, replacement).
KERNEL_MUTANTS = {
    # The tensor-core decoding kernel reads its tables before all warps have
    # written them.
    "missing barrier": (
        KERNELS,
        "  masks.init(p, b, kv_head, r0);\n  __syncthreads();\n"
        "  for (int i = tid; i < entries * 8; i += 32 * W) {",
        "  masks.init(p, b, kv_head, r0);\n"
        "  for (int i = tid; i < entries * 8; i += 32 * W) {",
    ),
    # A row's maximum misses one level of the warp's reduction.
    "short reduction": (
        KERNELS,
        "for (int offset = 4; offset < 32; offset *= 2) {\n"
        "        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, offset));",
        "for (int offset = 8; offset < 32; offset *= 2) {\n"
        "        mx = fmaxf(mx, __shfl_xor_sync(0xffffffff, mx, offset));",
    ),
    # Pass 2's (the tiled kernel's) log-sum-exp left in log2 units, and
    # finite for a row that sees no key.
    "lse in log2 units": (
        KERNELS,
        "lse[row] = l > 0 ? (m + log2f(l)) * 0.69314718056f : -CUDART_INF_F;",
        "lse[row] = l > 0 ? (m + log2f(l)) : -CUDART_INF_F;",
    ),
    # The tiled kernel decodes the next tile while warps still read the last.
    "missing barrier, tiled": (
        KERNELS,
        "    __syncthreads(); // the last tile is no longer read\n    decode(x);",
        "    decode(x);",
    ),
    "finite lse of an empty row": (
        KERNELS,
        "lse[row] = l > 0 ? (m + log2f(l)) * 0.69314718056f : -CUDART_INF_F;",
        "lse[row] = l > 0 ? (m + log2f(l)) * 0.69314718056f : 0.0f;",
    ),
    # The decode's last thread block's merge: by the block before the last,
    # whose count is one short; its log-sum-exp left in log2 units, and
    # finite for a row that sees no key.
    "merge a chunk early": (
        KERNELS,
        "last = atomicAdd(counter, 1u) == blocks - 1;",
        "last = atomicAdd(counter, 1u) == blocks - 2;",
    ),
    "decode lse in log2 units": (
        KERNELS,
        "l > 0 ? (m_all + log2f(l)) * 0.69314718056f : -CUDART_INF_F;",
        "l > 0 ? (m_all + log2f(l)) : -CUDART_INF_F;",
    ),
    "decode's finite lse of an empty row": (
        KERNELS,
        "l > 0 ? (m_all + log2f(l)) * 0.69314718056f : -CUDART_INF_F;",
        "l > 0 ? (m_all + log2f(l)) * 0.69314718056f : 0.0f;",
    ),
}
SHIM_MUTANTS = {
    # mma's A operand with its second and third registers swapped.
    "mma layout": (
        "A{{a0, a1, a2, a3}}",
        "A{{a0, a2, a1, a3}}",
    ),
    # ldmatrix .trans read as the plain one.
    "ldmatrix trans": (
        "trans_shared_b16 =\n    &ldmatrix_x4<true>;",
        "trans_shared_b16 =\n    &ldmatrix_x4<false>;",
    ),
}
# Mistakes the kernels cannot show (Q and K permuted alike leave QK^T as it
# is), which the instruction checks must.
INSTRUCTION_MUTANTS = {
    "ldmatrix halves swapped": (
        ": pack(at(j, r, c), at(j, r, c + 1));",
        ": pack(at(j, r, c + 1), at(j, r, c));",
    ),
    "shuffle width ignored": (
        "return src > last ? x : all[src];",
        "return all[src];",
    ),
    "ex2 without flushing": (
        "y = flush(std::exp2(flush(x)));",
        "y = std::exp2(x);",
    ),
    # cp.async.wait_group n leaving n + 1 groups in flight.
    "cp.async wait one group short": (
        "while (a.committed.size() > static_cast<size_t>(n)) {",
        "while (a.committed.size() > static_cast<size_t>(n) + 1) {",
    ),
}


def mutated(src, text, replacement, dst):
    body = src.read_text()
    assert body.count(text) == 1, f"{text!r} is not in {src} once"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(body.replace(text, replacement))


def tree_copy(tmp_path):
    tree = tmp_path / "tree"
    for h in cuda_run.HEADERS:
        (tree / h).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(MLX / h, tree / h)
    return tree


def assert_smoke_fails(tmp_path, *args):
    """The smoke set, built fast with the tool's `args`, must report a
    failed check."""
    p = run_tool(
        *args, "--build-dir", str(tmp_path / "b"), "--opt=-O0", "--dims", "smoke"
    )
    ok, failed = checked(p)
    assert p.returncode != 0 and failed, p.stdout + p.stderr


@needs_cuda_headers
@pytest.mark.parametrize("mutant", KERNEL_MUTANTS)
def test_a_broken_kernel_fails(tmp_path, mutant):
    name, text, replacement = KERNEL_MUTANTS[mutant]
    tree = tree_copy(tmp_path)
    mutated(MLX / name, text, replacement, tree / name)
    assert_smoke_fails(tmp_path, "--tree", str(tree))


@needs_cuda_headers
@pytest.mark.parametrize("mutant", SHIM_MUTANTS)
def test_a_broken_model_of_the_warp_fails(tmp_path, mutant):
    text, replacement = SHIM_MUTANTS[mutant]
    shim = tmp_path / "cuda_shim.h"
    mutated(cuda_run.SHIM, text, replacement, shim)
    assert_smoke_fails(tmp_path, "--shim", str(shim))


@needs_cuda_headers
@pytest.mark.parametrize("mutant", INSTRUCTION_MUTANTS)
def test_a_broken_instruction_fails_its_check(tmp_path, mutant):
    text, replacement = INSTRUCTION_MUTANTS[mutant]
    shim = tmp_path / "cuda_shim.h"
    mutated(cuda_run.SHIM, text, replacement, shim)
    p = subprocess.run(
        [str(instructions(tmp_path, shim))], capture_output=True, text=True
    )
    assert p.returncode != 0 and "FAIL " in p.stdout, p.stdout + p.stderr
