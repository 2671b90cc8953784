"""GGUF (llama.cpp's format) → our config, weights and tokenizer, via the `gguf` package.

Quantized tensors (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K, ...) and F16/BF16 are dequantized to
float32 with `gguf.quants`. llama.cpp stores the q and k projections of the `llama` architecture
with their rows permuted for its rotary kernel; we undo that so the weights match the HF layout
our rotary embedding uses. Architectures: llama, qwen2, gpt2.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from luoxia.core.errors import CorruptFileError, ModelNotFoundError, UnsupportedModelError
from luoxia.core.filehash import cached_sha256
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.model_config import TransformerConfig
from luoxia.text.tokenizer import Tokenizer, bytes_to_unicode

SUPPORTED_ARCHS = ("llama", "qwen2", "gpt2")
SUPPORTED_TOKENIZERS = ("gpt2",)  # byte-level BPE
GGUF_MAGIC = b"GGUF"


def open_gguf(path: str | os.PathLike):
    """A `gguf.GGUFReader` for `path`, with user errors for missing, foreign and truncated files."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"model file not found: {path}; give an existing .gguf file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise CorruptFileError(f"{path} is not a GGUF file (it does not start with 'GGUF'); give a .gguf model file")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as e:  # the reader raises assorted errors on damaged files
        reason = f"{type(e).__name__}: {e}"
        raise CorruptFileError(f"{path} is a damaged GGUF file ({reason}); re-download or re-export it") from None
    size = path.stat().st_size
    for t in reader.tensors:
        if t.data_offset + t.n_bytes > size:
            raise CorruptFileError(
                f"{path} is truncated (tensor {t.name} ends at byte {t.data_offset + t.n_bytes:,}, "
                f"the file has {size:,}); re-download or re-export it"
            )
    return reader


def _field(reader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def read_config(reader) -> TransformerConfig:
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise UnsupportedModelError(
            f"GGUF architecture {arch!r} is not supported; supported: {', '.join(SUPPORTED_ARCHS)}"
        )
    scaling = _field(reader, f"{arch}.rope.scaling.type", "none")
    if scaling not in ("none", None):
        raise UnsupportedModelError(f"RoPE scaling {scaling!r} is not supported; only unscaled RoPE is")

    def get(key, default=None):
        value = _field(reader, f"{arch}.{key}", default)
        if value is None:
            raise CorruptFileError(f"GGUF metadata lacks '{arch}.{key}'; the file is incomplete, re-export it")
        return value

    n_heads = get("attention.head_count")
    dim = get("embedding_length")
    names = {t.name for t in reader.tensors}
    vocab = _field(reader, f"{arch}.vocab_size") or len(reader.fields["tokenizer.ggml.tokens"].data)
    common = dict(
        vocab_size=int(vocab),
        dim=int(dim),
        n_layers=int(get("block_count")),
        n_heads=int(n_heads),
        n_kv_heads=int(get("attention.head_count_kv", n_heads)),
        head_dim=int(get("attention.key_length", dim // n_heads)),
        ffn_dim=int(get("feed_forward_length")),
        max_seq_len=int(get("context_length")),
        tie_embeddings="output.weight" not in names,
        arch=arch,
    )
    if arch == "gpt2":
        return TransformerConfig(
            **common, norm="layer", norm_eps=float(get("attention.layer_norm_epsilon")), mlp="gelu",
            positions="learned", bias=True,
        )
    return TransformerConfig(
        **common,
        norm_eps=float(get("attention.layer_norm_rms_epsilon")),
        rope_base=float(get("rope.freq_base", 10000.0)),
        qkv_bias=arch == "qwen2",
    )


def _dequantize(tensor) -> torch.Tensor:
    """One GGUF tensor as float32 in PyTorch's (out, in) layout."""
    from gguf import GGMLQuantizationType, quants

    shape = tuple(int(n) for n in reversed(tensor.shape))  # GGUF lists dimensions fastest-first
    if tensor.tensor_type == GGMLQuantizationType.F32:
        array = np.array(tensor.data, dtype=np.float32)  # a copy: the reader's arrays are read-only views
    else:
        try:
            array = quants.dequantize(tensor.data, tensor.tensor_type)
        except NotImplementedError:
            raise UnsupportedModelError(
                f"tensor {tensor.name} has type {tensor.tensor_type.name}, which the gguf package cannot dequantize"
            ) from None
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32).reshape(shape))


def _unpermute(w: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo llama.cpp's rotary row permutation of a q or k projection (weight or bias)."""
    head_dim = w.shape[0] // n_heads
    return w.reshape(n_heads, head_dim // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)


def read_state_dict(reader, config: TransformerConfig) -> dict[str, torch.Tensor]:
    raw = {t.name: t for t in reader.tensors}

    def get(name: str) -> torch.Tensor:
        if name not in raw:
            raise CorruptFileError(f"GGUF file lacks tensor {name!r}; it is incomplete, re-export it")
        return _dequantize(raw[name])

    sd = {"tok_embeddings.weight": get("token_embd.weight"), "norm.weight": get("output_norm.weight")}
    if not config.tie_embeddings:
        sd["output.weight"] = get("output.weight")
    if config.arch == "gpt2":
        sd["pos_embeddings.weight"] = get("position_embd.weight")
        sd["norm.bias"] = get("output_norm.bias")
    for i in range(config.n_layers):
        blk, ours = f"blk.{i}", f"layers.{i}"
        sd[f"{ours}.attention_norm.weight"] = get(f"{blk}.attn_norm.weight")
        sd[f"{ours}.ffn_norm.weight"] = get(f"{blk}.ffn_norm.weight")
        sd[f"{ours}.attention.wo.weight"] = get(f"{blk}.attn_output.weight")
        sd[f"{ours}.feed_forward.w_out.weight"] = get(f"{blk}.ffn_down.weight")
        if config.arch == "gpt2":
            for ggml_name, our_name in (("attn_qkv", "attention.wqkv"), ("attn_output", "attention.wo"),
                                        ("ffn_up", "feed_forward.w_in"), ("ffn_down", "feed_forward.w_out"),
                                        ("attn_norm", "attention_norm"), ("ffn_norm", "ffn_norm")):
                sd[f"{ours}.{our_name}.bias"] = get(f"{blk}.{ggml_name}.bias")
            sd[f"{ours}.attention.wqkv.weight"] = get(f"{blk}.attn_qkv.weight")
            sd[f"{ours}.feed_forward.w_in.weight"] = get(f"{blk}.ffn_up.weight")
            continue
        permute = config.arch == "llama"
        parts = {"weight": [], "bias": []}
        for proj, heads in (("q", config.n_heads), ("k", config.n_kv_heads), ("v", 0)):
            for kind in ("weight", "bias") if config.qkv_bias else ("weight",):
                w = get(f"{blk}.attn_{proj}.{kind}")
                parts[kind].append(_unpermute(w, heads) if permute and heads else w)
        for kind, tensors in parts.items():
            if tensors:
                sd[f"{ours}.attention.wqkv.{kind}"] = torch.cat(tensors)
        sd[f"{ours}.feed_forward.w_in.weight"] = torch.cat((get(f"{blk}.ffn_gate.weight"), get(f"{blk}.ffn_up.weight")))
    return sd


# Pre-tokenizer rules by `tokenizer.ggml.pre`, as llama.cpp applies them (llama-vocab.cpp).
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLITS = {"llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT, "smaug-bpe": _LLAMA3_SPLIT,
           "dbrx": _LLAMA3_SPLIT, "falcon3": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT, "deepseek-r1-qwen": _QWEN2_SPLIT}
# StarCoder-lineage vocabularies (SmolLM among them) put every digit in a token of its own.
_DIGIT_SPLIT = {"smollm", "starcoder", "refact", "codeshell", "command-r", "exaone", "minerva-7b"}


def _pre_tokenizer(pre: str | None):
    from tokenizers import Regex, pre_tokenizers

    if pre in _SPLITS:
        return pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_SPLITS[pre]), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in _DIGIT_SPLIT:
        return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    return byte_level  # GPT-2's rule, the default for byte-level vocabularies


def read_tokenizer(reader) -> Tokenizer:
    from tokenizers import AddedToken, decoders, models, processors
    from tokenizers import Tokenizer as BackendTokenizer
    from tokenizers.pre_tokenizers import ByteLevel

    kind = _field(reader, "tokenizer.ggml.model")
    if kind not in SUPPORTED_TOKENIZERS:
        raise UnsupportedModelError(
            f"GGUF tokenizer type {kind!r} is not supported; supported: "
            f"{', '.join(SUPPORTED_TOKENIZERS)} (byte-level BPE)"
        )
    tokens: list[str] = _field(reader, "tokenizer.ggml.tokens")
    merges: list[str] = _field(reader, "tokenizer.ggml.merges", [])
    types: list[int] = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))

    alphabet = set(ByteLevel.alphabet())
    spell = bytes_to_unicode()
    # A token outside the byte alphabet is written in plain UTF-8 by the converter; respell it.
    vocab = {t if set(t) <= alphabet else "".join(spell[b] for b in t.encode()): i for i, t in enumerate(tokens)}
    backend = BackendTokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ", 1)) for m in merges]))
    backend.pre_tokenizer = _pre_tokenizer(_field(reader, "tokenizer.ggml.pre"))
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    # Control tokens (type 3) are special, user-defined ones (type 4) plain added tokens; both stay whole.
    backend.add_special_tokens(
        [AddedToken(t, normalized=False, special=True) for t, k in zip(tokens, types) if k == 3 and set(t) <= alphabet]
    )
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t, k in zip(tokens, types) if k == 4])

    def special(key: str) -> str | None:
        token_id = _field(reader, f"tokenizer.ggml.{key}")
        return tokens[token_id] if token_id is not None and 0 <= token_id < len(tokens) else None

    return Tokenizer(
        backend,
        bos_token=special("bos_token_id"),
        eos_token=special("eos_token_id"),
        pad_token=special("padding_token_id"),
        unk_token=special("unknown_token_id"),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        add_eos=bool(_field(reader, "tokenizer.ggml.add_eos_token", False)),
        chat_template=_field(reader, "tokenizer.chat_template"),
        extra_eos_tokens=[t for t in (special("eot_token_id"), special("eom_token_id")) if t],
    )


def load_gguf(path: str | os.PathLike) -> ModelBundle:
    """Read a GGUF file: config, dequantized float32 weights in our layout, tokenizer."""
    reader = open_gguf(path)
    config = read_config(reader)
    tokenizer = read_tokenizer(reader)
    state_dict = read_state_dict(reader, config)
    return ModelBundle(
        config=config, state_dict=state_dict, tokenizer=tokenizer, source=str(Path(path).resolve()),
        sha256=cached_sha256(path), name=_field(reader, "general.name", Path(path).stem),
        source_dtype=dominant_type(reader),
    )


def dominant_type(reader) -> str:
    """The tensor type holding most of the file's weights, e.g. "Q4_1"."""
    counts: dict[str, int] = {}
    for t in reader.tensors:
        counts[t.tensor_type.name] = counts.get(t.tensor_type.name, 0) + int(t.n_elements)
    return max(counts, key=counts.get) if counts else "F32"


# --- export: our config, weights and tokenizer → a GGUF file -----------------------------------


def _permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's rotary row permutation of a q or k projection (the inverse of `_unpermute`)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(config: TransformerConfig, state_dict: dict[str, torch.Tensor], tokenizer: Tokenizer,
               path: str | os.PathLike, name: str = "luoxia") -> Path:
    """Write a float32 GGUF (llama or qwen2 architecture, byte-level BPE tokenizer) that llama.cpp and
    `load_gguf` read; written to a temporary file and renamed."""
    import json as _json

    import gguf

    from luoxia.core import atomic

    if config.arch not in ("llama", "qwen2") or config.norm != "rms" or config.mlp != "swiglu":
        raise UnsupportedModelError(f"GGUF export supports llama and qwen2 models, not {config.arch}")
    H, K, D = config.n_heads, config.n_kv_heads, config.head_dim
    sd = {k: v.detach().float().cpu().numpy() for k, v in state_dict.items()}
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        w = gguf.GGUFWriter(str(tmp), config.arch)
        w.add_name(name)
        w.add_block_count(config.n_layers)
        w.add_context_length(config.max_seq_len)
        w.add_embedding_length(config.dim)
        w.add_feed_forward_length(config.ffn_dim)
        w.add_head_count(H)
        w.add_head_count_kv(K)
        w.add_key_length(D)
        w.add_value_length(D)
        w.add_rope_freq_base(config.rope_base)
        w.add_layer_norm_rms_eps(config.norm_eps)
        w.add_vocab_size(config.vocab_size)
        w.add_rope_dimension_count(D)

        backend = tokenizer.backend
        spec = _json.loads(backend.to_str())
        if spec["model"]["type"] != "BPE" or spec.get("decoder", {}).get("type") != "ByteLevel":
            raise UnsupportedModelError("GGUF export needs a byte-level BPE tokenizer")
        vocab = backend.get_vocab(with_added_tokens=True)
        tokens = [f"[PAD{i}]" for i in range(config.vocab_size)]
        for t, i in vocab.items():
            if i < config.vocab_size:
                tokens[i] = t
        specials = {t["content"] for t in spec.get("added_tokens", []) if t.get("special")}
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("default")
        w.add_token_list(tokens)
        w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
        w.add_token_types([3 if t in specials else 1 for t in tokens])
        if tokenizer.eos_ids:
            w.add_eos_token_id(tokenizer.eos_ids[0])
        if tokenizer.bos_id is not None:
            w.add_bos_token_id(tokenizer.bos_id)
        if tokenizer.pad_id is not None:
            w.add_pad_token_id(tokenizer.pad_id)
        w.add_add_bos_token(tokenizer.add_bos)
        if tokenizer.chat_template:
            w.add_chat_template(tokenizer.chat_template)

        permute = config.arch == "llama"
        w.add_tensor("token_embd.weight", sd["tok_embeddings.weight"])
        w.add_tensor("output_norm.weight", sd["norm.weight"])
        if not config.tie_embeddings:
            w.add_tensor("output.weight", sd["output.weight"])
        for i in range(config.n_layers):
            blk, ours = f"blk.{i}", f"layers.{i}"
            w.add_tensor(f"{blk}.attn_norm.weight", sd[f"{ours}.attention_norm.weight"])
            w.add_tensor(f"{blk}.ffn_norm.weight", sd[f"{ours}.ffn_norm.weight"])
            for kind in ("weight", "bias") if config.qkv_bias else ("weight",):
                qkv = sd[f"{ours}.attention.wqkv.{kind}"]
                q, k, v = np.split(qkv, [H * D, H * D + K * D])
                w.add_tensor(f"{blk}.attn_q.{kind}", np.ascontiguousarray(_permute(q, H) if permute else q))
                w.add_tensor(f"{blk}.attn_k.{kind}", np.ascontiguousarray(_permute(k, K) if permute else k))
                w.add_tensor(f"{blk}.attn_v.{kind}", np.ascontiguousarray(v))
            w.add_tensor(f"{blk}.attn_output.weight", sd[f"{ours}.attention.wo.weight"])
            gate, up = np.split(sd[f"{ours}.feed_forward.w_in.weight"], 2)
            w.add_tensor(f"{blk}.ffn_gate.weight", np.ascontiguousarray(gate))
            w.add_tensor(f"{blk}.ffn_up.weight", np.ascontiguousarray(up))
            w.add_tensor(f"{blk}.ffn_down.weight", sd[f"{ours}.feed_forward.w_out.weight"])
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return path
