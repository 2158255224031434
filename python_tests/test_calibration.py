"""Key calibration of the patched mlx-lm's TurboQuantKVCache, with the caches
that its command line builds (bench_model.make_cache): a model whose keys carry a
large constant per-channel component (a key-projection bias, as Qwen2.5 has)
stays as close to the float16 cache with calibrated TurboQuant keys as a
model without it, and does not without calibration. A tiny random Qwen2
model stands in for the real one."""

import sys

import mlx.core as mx
import numpy as np
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from bench_model import make_cache  # noqa: E402

PREFILL, DECODE = 48, 8
HEAD_DIM, KV_HEADS = 64, 2


def tiny_qwen2(key_bias):
    """Two layers of random Qwen2 with rope_theta 1e6 and head dim 64, whose
    key projections have a bias of norm about `key_bias` times the rest of
    the key. The bias sits, as in Qwen2.5, on the channels that RoPE turns
    slowest (pairs 20-31 of 32: under 0.01 rad over these tokens), so it is
    a nearly constant per-channel component of the keys."""
    from mlx_lm.models import qwen2

    args = qwen2.ModelArgs(
        model_type="qwen2",
        hidden_size=256,
        num_hidden_layers=2,
        intermediate_size=512,
        num_attention_heads=4,
        num_key_value_heads=KV_HEADS,
        rms_norm_eps=1e-6,
        vocab_size=512,
        rope_theta=1e6,
        tie_word_embeddings=True,
    )
    mx.random.seed(0)
    model = qwen2.Model(args)
    channels = np.zeros(HEAD_DIM, np.float32)
    channels[20:32] = channels[52:64] = 1
    where = mx.array(np.tile(channels, KV_HEADS))
    scale = float(key_bias * 8 / np.sqrt(24))  # the rest of a key has norm ~8
    for layer in model.layers:
        bias = layer.self_attn.k_proj.bias
        layer.self_attn.k_proj.bias = scale * mx.random.normal(bias.shape) * where
    mx.eval(model.parameters())
    return model


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.default_rng(0)
    return rng.integers(0, 512, PREFILL + DECODE).tolist()


def logits(model, tokens, cache):
    out = [model(mx.array(tokens[:PREFILL])[None], cache=cache)[0]]
    for t in tokens[PREFILL:]:
        out.append(model(mx.array([[t]]), cache=cache)[0])
    return mx.concatenate(out).astype(mx.float32)


def relative_error(model, tokens, name):
    """|logits - float16 cache's logits| over the spread of the latter."""
    ref = logits(model, tokens, make_cache(model, "float16"))
    out = logits(model, tokens, make_cache(model, name))
    centered = ref - ref.mean(axis=-1, keepdims=True)
    return (mx.linalg.norm(out - ref) / mx.linalg.norm(centered)).item()


def test_keys_have_a_large_mean(tokens):
    model = tiny_qwen2(key_bias=20)
    cache = make_cache(model, "turbo4")
    model(mx.array(tokens[:PREFILL])[None], cache=cache)
    mean = cache[0].key_mean
    assert mean is not None and mean.shape == (1, KV_HEADS, 1, HEAD_DIM)
    assert mx.linalg.norm(mean, axis=-1).min().item() > 30


@pytest.mark.parametrize("name", ["turbo4", "turbo3", "k4v3"])
def test_calibration_removes_the_key_bias(tokens, name):
    # The bias does not change attention (softmax ignores q . b), so the
    # float16 cache gives the same logits with or without it. Calibrated
    # keys are as good with the bias as without; uncalibrated ones lose most
    # of their precision to it. Measured relative errors without the bias,
    # with it calibrated, with it uncalibrated: turbo4 0.114, 0.114, 0.519;
    # turbo3 0.234, 0.238, 0.798; k4v3 (turbo3 values) 0.227, 0.226, 0.541.
    without = relative_error(tiny_qwen2(key_bias=0), tokens, name)
    model = tiny_qwen2(key_bias=20)
    calibrated = relative_error(model, tokens, name)
    uncalibrated = relative_error(model, tokens, f"{name}-nocal")
    assert calibrated < 1.2 * without, (calibrated, without)
    assert uncalibrated > 2 * without, (uncalibrated, without)


def test_centering_is_exact_for_attention():
    # Subtracting one vector from every key shifts each query's scores by
    # one constant: attention over centered keys equals attention over the
    # keys themselves.
    key = mx.random.key(1)
    k1, k2, k3, k4 = mx.random.split(key, 4)
    k = mx.random.normal((1, 2, 20, 64), key=k1)
    k = k + 50 * mx.random.normal((1, 2, 1, 64), key=k2)
    v = mx.random.normal((1, 2, 20, 64), key=k3)
    q = mx.random.normal((1, 4, 3, 64), key=k4)
    a = mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125)
    b = mx.fast.scaled_dot_product_attention(
        q, k - k.mean(axis=2, keepdims=True), v, scale=0.125
    )
    assert mx.allclose(a, b, atol=1e-4)


def test_calibration_is_on_for_turbo_keys_only(tokens):
    model = tiny_qwen2(key_bias=0)
    for name, centered in [
        ("turbo4", True),
        ("k4v3", True),
        ("turbo4@8", True),
        ("k8v4", False),
        ("affine4", False),
        ("turbo4-nocal", False),
    ]:
        cache = make_cache(model, name)
        model(mx.array(tokens[:PREFILL])[None], cache=cache)
        assert (getattr(cache[0], "key_mean", None) is not None) == centered, name
