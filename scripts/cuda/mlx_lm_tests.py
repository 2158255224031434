#!/usr/bin/env python3
"""Run the mlx-lm series' TurboQuant cache tests on the default device (the
GPU on a CUDA machine) where mlx-lm's dependencies are not installed:
mlx_lm's package __init__ imports transformers for its loaders, which
these tests do not use, so the package is entered without it. Arguments go
to pytest.

    python3 scripts/cuda/mlx_lm_tests.py -q
"""

import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ["tests/test_turboquant_cache.py"]

if __name__ == "__main__":
    package = types.ModuleType("mlx_lm")
    package.__path__ = [str(ROOT / "mlx-lm" / "mlx_lm")]
    sys.modules["mlx_lm"] = package
    sys.exit(pytest.main([*sys.argv[1:], *(str(ROOT / "mlx-lm" / t) for t in TESTS)]))
