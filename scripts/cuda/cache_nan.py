#!/usr/bin/env python3
"""Reproduce the NaN of mlx-lm's TurboQuantKVCache on CUDA
(results/cuda_gpu_tests_h100.txt, 4b): the test suite's two-layer float32
llama, run with mlx-lm's float cache and then with TurboQuantKVCache (a
32-token prefill, then one token at a time), reports the first position whose
logits are NaN and the relative error against the float cache.

    python3 scripts/cuda/cache_nan.py [plain|eval|f16|noref]

plain: as the tests run it; eval: mx.eval after every decoding step; f16: the
model in float16 (the tensor-core kernels instead of the CUDA-core ones);
noref: without the float cache's run first. Run it with and without
MLX_USE_CUDA_GRAPHS=0 as well. On the CPU every mode gives no NaN and an error
of about 0.1.
"""

import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# As scripts/cuda/mlx_lm_tests.py: mlx_lm's __init__ imports what is not here.
package = types.ModuleType("mlx_lm")
package.__path__ = [str(ROOT / "mlx-lm" / "mlx_lm")]
sys.modules["mlx_lm"] = package
sys.path.insert(0, str(ROOT / "mlx-lm" / "tests"))

import mlx.core as mx  # noqa: E402
import test_turboquant_cache as tests  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402


def main(how):
    model = tests.tiny_llama()
    if how == "f16":
        model.set_dtype(mx.float16)
    tokens = mx.random.randint(0, 256, (1, 40), key=mx.random.key(1))

    def run(cache, prefill=32):
        # The tests' run(), with an eval after each decoding step if asked.
        if how == "eval":
            out = [model(tokens[:, :prefill], cache=cache)]
            for i in range(prefill, tokens.shape[1]):
                out.append(model(tokens[:, i : i + 1], cache=cache))
                mx.eval(out[-1])
            out = mx.concatenate(out, axis=1).astype(mx.float32)
        else:
            out = tests.run(model, tokens, cache, prefill)
        return out - out.mean(axis=-1, keepdims=True)

    ref = None if how == "noref" else run(make_prompt_cache(model))
    for kwargs in (
        {"key_mode": "turbo4"},
        {"key_mode": "affine", "key_bits": 8, "value_mode": "turbo4"},
    ):
        for trial in range(3):
            out = run(tests.turbo_cache(model, **kwargs))
            nan = mx.isnan(out).any(axis=-1).reshape(-1).tolist()
            first = nan.index(True) if True in nan else None
            err = float("nan")
            if ref is not None:
                err = (mx.linalg.norm(out - ref) / mx.linalg.norm(ref)).item()
            print(
                f"{how} {kwargs} trial {trial}: first NaN at {first}, error {err:.4f}"
            )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "plain")
