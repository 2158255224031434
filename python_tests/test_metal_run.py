"""The series' Metal kernels executed on the CPU from their own source
(scripts/metal/metal_run.py), and the shim they are compiled against."""

import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts" / "metal"))
import msl  # noqa: E402

# float -> bfloat as Metal converts: round to nearest, ties to even. A
# truncating conversion fails the first, third, fourth and sixth lines.
BFLOAT_ROUNDING = """
constexpr uint16_t bf(uint32_t u) {
  return bfloat(__builtin_bit_cast(float, u)).bits_;
}
static_assert(bf(0x3F818000u) == 0x3F82, "a tie rounds to even, up");
static_assert(bf(0x3F808000u) == 0x3F80, "a tie rounds to even, down");
static_assert(bf(0x3F80C000u) == 0x3F81, "above half rounds up");
static_assert(bf(0xBF80C000u) == 0xBF81, "negative, above half");
static_assert(bf(0x3F807FFFu) == 0x3F80, "below half rounds down");
static_assert(bf(0x7F7FFFFFu) == 0x7F80, "overflow rounds to infinity");
static_assert(bf(0x7FC00001u) == 0x7FC0, "a NaN stays a NaN");
static_assert(bf(0x7F800001u) == 0x7FC0, "a signalling NaN is quieted");
"""


def test_shim_rounds_float_to_bfloat_to_nearest_even(tmp_path):
    src = tmp_path / "bfloat_rounding.cpp"
    src.write_text(BFLOAT_ROUNDING)
    p = subprocess.run(
        [msl.CLANG, "--target=spir64", *msl.CLCPP, "-fsyntax-only"]
        + ["-isystem", str(msl.SHIM), "-include", "metal_shim.h", str(src)],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
