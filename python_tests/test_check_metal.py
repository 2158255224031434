"""scripts/metal/check_metal.py: it passes on the series and on the base, and fails,
naming the mistake, on mistakes seeded into a copy of the TurboQuant kernels."""

import shutil
import subprocess

import pytest
from conftest import ROOT, pinned_base, run

CHECK = ROOT / "scripts" / "metal" / "check_metal.py"
KERNELS = "mlx/backend/metal/kernels"
CODEBOOKS = "mlx/backend/common/turbo_codebooks.h"
SDPA = "scaled_dot_product_attention.metal"
# At least these include a file that the series changes.
TOUCHED = {"fp_quantized.metal", "quantized.metal", SDPA}

# (file, text, replacement, what the checker must say)
SEEDS = {
    "value_of_wrong_type": (
        "quantized_utils.h",
        "return OutT(turbo3_centroids[v]);",
        "return OutT(&turbo3_centroids[v]);",
        "functional-style cast from 'const __constant float *' to 'float'",
    ),
    "missing_codebook": (
        "quantized_utils.h",
        "return OutT(turbo3_centroids[v]);",
        "return OutT(turbo5_centroids[v]);",
        "use of undeclared identifier 'turbo5_centroids'",
    ),
    "misspelled_config_member": (
        "quantized_utils.h",
        "struct QuantConfig<QuantMode::Turbo3> {\n"
        "  static constant constexpr bool has_bias = false;",
        "struct QuantConfig<QuantMode::Turbo3> {\n"
        "  static constant constexpr bool has_bais = false;",
        "no member named 'has_bias' in 'QuantConfig<QuantMode::Turbo3>'",
    ),
    "codebook_outside_constant": (
        "turbo_quant.h",
        "constant constexpr float turbo3_centroids[8]",
        "constexpr float turbo3_centroids[8]",
        "program scope variable must reside in constant address space",
    ),
    "codebook_read_as_device_memory": (
        "quantized_utils.h",
        "return OutT(turbo3_centroids[v]);",
        "const device float* codebook = turbo3_centroids;\n"
        "    return OutT(codebook[v]);",
        "cannot initialize a variable of type 'const __global float *",
    ),
    # Only instantiating the quantized SDPA kernels for Turbo3 reaches it.
    "unsupported_bits_in_dispatch": (
        "sdpa_vector.h",
        "QUANT_SDPA_FORMAT(CASE, Turbo3, D, 3)",
        "QUANT_SDPA_FORMAT(CASE, Turbo3, D, 5)",
        "unsupported quant bits",
    ),
}


def check_metal(*args):
    p = run([CHECK, *args], check=False)
    return p.returncode, p.stdout + p.stderr


def checked(output):
    return {
        line.split(f"{KERNELS}/")[1]
        for line in output.splitlines()
        if line.startswith("==> checking ")
    }


def test_passes_on_the_series():
    rc, out = check_metal()
    assert rc == 0, out
    assert checked(out) >= TOUCHED, out
    assert "error" not in out and "warning" not in out, out


def test_passes_on_the_base(tmp_path):
    archive = subprocess.run(
        ["git", "-C", ROOT / "mlx", "archive", pinned_base(), KERNELS],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", tmp_path], input=archive.stdout, check=True)
    assert not (tmp_path / KERNELS / "turbo_quant.h").exists()
    rc, out = check_metal("--tree", tmp_path)
    assert rc == 0, out
    assert checked(out) >= TOUCHED, out


@pytest.mark.parametrize("seed", SEEDS)
def test_fails_on_a_seeded_mistake(tmp_path, seed):
    name, text, replacement, message = SEEDS[seed]
    shutil.copytree(ROOT / "mlx" / KERNELS, tmp_path / KERNELS)
    (tmp_path / CODEBOOKS).parent.mkdir(parents=True)
    shutil.copy(ROOT / "mlx" / CODEBOOKS, tmp_path / CODEBOOKS)
    path = tmp_path / KERNELS / name
    source = path.read_text()
    assert source.count(text) == 1, f"{name} no longer has {text!r} once"
    path.write_text(source.replace(text, replacement))
    rc, out = check_metal("--tree", tmp_path, SDPA)
    assert rc != 0, out
    assert f"does not type-check: {KERNELS}/{SDPA}" in out, out
    # The diagnostics name the files of the checked tree, not a scratch copy.
    errors = [line for line in out.splitlines() if message in line]
    assert errors, out
    assert all(line.startswith(f"{tmp_path / KERNELS}/") for line in errors), out
