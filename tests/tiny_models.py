"""Tiny models and tokenizers the tests make themselves, saved in the real formats.

- `make_tokenizer`: a byte-level BPE trained on a few mixed sentences, with ChatML special tokens.
- `make_hf_model`: a random transformers Llama / GPT-2 / Qwen2 saved as a Hugging Face folder.
- `write_gguf`: a llama-architecture GGUF written with the `gguf` package (q/k rows permuted as
  llama.cpp's converter does), every matrix in a chosen tensor type.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

CHATML = (
    "{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. " * 3,
    "def main():\n    print('hello, world')\n    return 0\n",
    "落霞与孤鹜齐飞，秋水共长天一色。",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "Numbers like 2024 and 3.14159 appear in text; so do emoji 🙂🚀 and tabs\tand   spaces.",
    "She sells sea shells by the sea shore, and the shells she sells are surely sea shells.",
]


def make_tokenizer(directory: Path, vocab_size: int = 400) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 5, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
              "pad_token": "<|endoftext|>", "unk_token": None, "add_bos_token": False, "chat_template": CHATML}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    return directory


def make_hf_model(directory: Path, arch: str, vocab_size: int, seed: int = 0, **overrides) -> Path:
    """A random model of `arch` ("llama", "gpt2", "qwen2") saved with save_pretrained (safetensors)."""
    import transformers

    torch.manual_seed(seed)
    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=256, eos_token_id=2, bos_token_id=None,
                 pad_token_id=0, vocab_size=vocab_size)
    if arch == "llama":
        config = transformers.LlamaConfig(**{**shape, "tie_word_embeddings": False, **overrides})
        model = transformers.LlamaForCausalLM(config)
    elif arch == "qwen2":
        config = transformers.Qwen2Config(**{**shape, "tie_word_embeddings": True, **overrides})
        model = transformers.Qwen2ForCausalLM(config)
    elif arch == "gpt2":
        config = transformers.GPT2Config(**{"vocab_size": vocab_size, "n_embd": 64, "n_layer": 2, "n_head": 4,
                                            "n_positions": 256, "eos_token_id": 2, "bos_token_id": 2,
                                            "pad_token_id": 0, **overrides})
        model = transformers.GPT2LMHeadModel(config)
    else:
        raise ValueError(arch)
    # Random init gives near-uniform logits; widen them so greedy and beam choices are clear-cut.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    model.eval()
    model.save_pretrained(directory, safe_serialization=True)
    return directory


def _permute(w: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's converter permutation of q/k rows (the inverse of our loader's)."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _random_k_blocks(n_rows: int, n_cols: int, qtype, rng: np.random.Generator) -> np.ndarray:
    """Random but well-formed K-quant blocks: random quants, small finite fp16 scales."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[qtype]
    data = rng.integers(0, 256, size=(n_rows, n_cols // block, size), dtype=np.uint8)
    scale = np.frombuffer(np.float16(0.004).tobytes(), dtype=np.uint8)
    small = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    if qtype == GGMLQuantizationType.Q6_K:  # ... ql, qh, int8 scales, then d at the end
        data[..., -2:] = scale
    else:  # Q4_K, Q5_K: d and dmin first
        data[..., 0:2] = scale
        data[..., 2:4] = small
    return data.reshape(n_rows, -1)


def write_gguf(path: Path, hf_dir: Path, qtype_name: str = "F32", seed: int = 0) -> Path:
    """A llama GGUF from a tiny HF Llama folder; matrices stored as `qtype_name`.

    F32/F16/BF16/Q8_0/Q4_0/Q4_1 quantize the folder's weights; K-quants (which the gguf package
    cannot quantize) get random well-formed blocks instead, so compare loaders, not models.
    """
    import gguf
    from safetensors.numpy import load_file

    qtype = gguf.GGMLQuantizationType[qtype_name]
    cfg = json.loads((hf_dir / "config.json").read_text())
    tok = json.loads((hf_dir / "tokenizer.json").read_text())
    tok_cfg = json.loads((hf_dir / "tokenizer_config.json").read_text())
    weights = {k: v.astype(np.float32) for k, v in load_file(hf_dir / "model.safetensors").items()}
    rng = np.random.default_rng(seed)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg.get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(cfg["vocab_size"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])

    vocab = tok["model"]["vocab"]
    added = {t["content"]: t["id"] for t in tok["added_tokens"]}
    tokens = [None] * cfg["vocab_size"]
    for t, i in {**vocab, **added}.items():
        tokens[i] = t
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(tokens)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_merges(merges)
    w.add_token_types([3 if t in added else 1 for t in tokens])
    w.add_eos_token_id(added["<|im_end|>"])
    w.add_pad_token_id(added["<|endoftext|>"])
    w.add_add_bos_token(False)
    w.add_chat_template(tok_cfg["chat_template"])

    def add(name: str, array: np.ndarray) -> None:
        if array.ndim == 1 or qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, array.astype(np.float32))
        elif qtype.name.endswith("_K"):
            blocks = _random_k_blocks(array.shape[0], array.shape[1], qtype, rng)
            w.add_tensor(name, blocks, raw_shape=blocks.shape, raw_dtype=qtype)
        else:
            data = gguf.quants.quantize(array, qtype)
            w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)

    n_heads, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    add("token_embd.weight", weights["model.embed_tokens.weight"])
    add("output_norm.weight", weights["model.norm.weight"])
    if "lm_head.weight" in weights:
        add("output.weight", weights["lm_head.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", weights[p + "input_layernorm.weight"])
        add(f"blk.{i}.ffn_norm.weight", weights[p + "post_attention_layernorm.weight"])
        add(f"blk.{i}.attn_q.weight", _permute(weights[p + "self_attn.q_proj.weight"], n_heads))
        add(f"blk.{i}.attn_k.weight", _permute(weights[p + "self_attn.k_proj.weight"], n_kv))
        add(f"blk.{i}.attn_v.weight", weights[p + "self_attn.v_proj.weight"])
        add(f"blk.{i}.attn_output.weight", weights[p + "self_attn.o_proj.weight"])
        add(f"blk.{i}.ffn_gate.weight", weights[p + "mlp.gate_proj.weight"])
        add(f"blk.{i}.ffn_up.weight", weights[p + "mlp.up_proj.weight"])
        add(f"blk.{i}.ffn_down.weight", weights[p + "mlp.down_proj.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
