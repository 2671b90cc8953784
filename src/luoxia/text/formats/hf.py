"""Hugging Face model folders → our config, weights and tokenizer.

A folder holds `config.json`, `model.safetensors` (or shards listed in
`model.safetensors.index.json`), `tokenizer.json` and usually `tokenizer_config.json`,
`generation_config.json` and a chat template. Architectures: llama (and mistral without sliding
windows), qwen2, gpt2. Weights are read with `safetensors`; nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from luoxia.core.errors import CorruptFileError, ModelNotFoundError, UnsupportedModelError
from luoxia.core.filehash import cached_sha256
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.model_config import TransformerConfig
from luoxia.text.tokenizer import Tokenizer

if TYPE_CHECKING:  # torch loads only to convert weights: reading a tokenizer needs none
    import torch

SUPPORTED_ARCHS = ("llama", "mistral", "qwen2", "gpt2")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptFileError(f"cannot read {path} as JSON ({e}); fix or replace the file") from None


def read_config(directory: Path) -> TransformerConfig:
    cfg = _read_json(directory / "config.json")
    arch = cfg.get("model_type")
    if arch not in SUPPORTED_ARCHS:
        raise UnsupportedModelError(
            f"model_type {arch!r} in {directory / 'config.json'} is not supported; "
            f"supported: {', '.join(SUPPORTED_ARCHS)}"
        )
    if arch == "gpt2":
        dim = cfg["n_embd"]
        return TransformerConfig(
            vocab_size=cfg["vocab_size"], dim=dim, n_layers=cfg["n_layer"], n_heads=cfg["n_head"],
            ffn_dim=cfg.get("n_inner") or 4 * dim, max_seq_len=cfg["n_positions"], norm="layer",
            norm_eps=cfg.get("layer_norm_epsilon", 1e-5), mlp="gelu", positions="learned", bias=True,
            tie_embeddings=cfg.get("tie_word_embeddings", True), arch="gpt2",
        )
    if arch == "mistral" and cfg.get("sliding_window"):
        raise UnsupportedModelError("Mistral models with sliding-window attention are not supported")
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise UnsupportedModelError(f"RoPE scaling {rope_type!r} is not supported; only unscaled RoPE is")
    if cfg.get("hidden_act", "silu") != "silu":
        raise UnsupportedModelError(f"hidden_act {cfg['hidden_act']!r} is not supported; only silu (SwiGLU) is")
    n_heads = cfg["num_attention_heads"]
    return TransformerConfig(
        vocab_size=cfg["vocab_size"], dim=cfg["hidden_size"], n_layers=cfg["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=cfg.get("num_key_value_heads") or n_heads,
        head_dim=cfg.get("head_dim") or cfg["hidden_size"] // n_heads,
        ffn_dim=cfg["intermediate_size"], max_seq_len=cfg.get("max_position_embeddings", 2048),
        norm_eps=cfg.get("rms_norm_eps", 1e-6), rope_base=rope.get("rope_theta", cfg.get("rope_theta", 10000.0)),
        qkv_bias=arch == "qwen2" or bool(cfg.get("attention_bias")),
        tie_embeddings=cfg.get("tie_word_embeddings", False), arch="qwen2" if arch == "qwen2" else "llama",
    )


def weight_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(_read_json(index)["weight_map"].values()))
        return [directory / s for s in shards]
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    raise ModelNotFoundError(
        f"{directory} has no model.safetensors (or sharded index); "
        "only safetensors weights are read, never .bin pickles"
    )


def read_raw_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for f in weight_files(directory):
        if not f.is_file():
            raise ModelNotFoundError(f"weight shard {f} is missing; restore it or re-download the model")
        try:
            tensors.update(load_file(f))
        except (SafetensorError, OSError, ValueError) as e:
            reason = f"{f} is not a readable safetensors file ({e})"
            raise CorruptFileError(f"{reason}; re-download or re-export it") from None
    return tensors


def convert_state_dict(raw: dict[str, torch.Tensor], config: TransformerConfig) -> dict[str, torch.Tensor]:
    """HF parameter names and layouts → ours (float32)."""
    import torch

    raw = {k.removeprefix("model.").removeprefix("transformer."): v.float() for k, v in raw.items()}

    def get(name: str) -> torch.Tensor:
        if name not in raw:
            raise CorruptFileError(f"the weights lack {name!r}; the model files are incomplete")
        return raw[name]

    if config.arch == "gpt2":
        return _convert_gpt2(get, config)
    sd = {"tok_embeddings.weight": get("embed_tokens.weight"), "norm.weight": get("norm.weight")}
    if not config.tie_embeddings:
        sd["output.weight"] = raw.get("lm_head.weight", raw.get("model.lm_head.weight"))
        if sd["output.weight"] is None:
            raise CorruptFileError("the weights lack 'lm_head.weight' and the config says embeddings are not tied")
    for i in range(config.n_layers):
        hf, ours = f"layers.{i}", f"layers.{i}"
        sd[f"{ours}.attention_norm.weight"] = get(f"{hf}.input_layernorm.weight")
        sd[f"{ours}.ffn_norm.weight"] = get(f"{hf}.post_attention_layernorm.weight")
        sd[f"{ours}.attention.wqkv.weight"] = torch.cat([get(f"{hf}.self_attn.{p}_proj.weight") for p in "qkv"])
        if config.qkv_bias:
            sd[f"{ours}.attention.wqkv.bias"] = torch.cat([get(f"{hf}.self_attn.{p}_proj.bias") for p in "qkv"])
        sd[f"{ours}.attention.wo.weight"] = get(f"{hf}.self_attn.o_proj.weight")
        sd[f"{ours}.feed_forward.w_in.weight"] = torch.cat(
            (get(f"{hf}.mlp.gate_proj.weight"), get(f"{hf}.mlp.up_proj.weight"))
        )
        sd[f"{ours}.feed_forward.w_out.weight"] = get(f"{hf}.mlp.down_proj.weight")
    return sd


def _convert_gpt2(get, config: TransformerConfig) -> dict[str, torch.Tensor]:
    # GPT-2 uses Conv1D layers whose weights are stored (in, out): transpose to (out, in).
    sd = {
        "tok_embeddings.weight": get("wte.weight"), "pos_embeddings.weight": get("wpe.weight"),
        "norm.weight": get("ln_f.weight"), "norm.bias": get("ln_f.bias"),
    }
    for i in range(config.n_layers):
        hf, ours = f"h.{i}", f"layers.{i}"
        for hf_name, our_name in (("ln_1", "attention_norm"), ("ln_2", "ffn_norm")):
            sd[f"{ours}.{our_name}.weight"] = get(f"{hf}.{hf_name}.weight")
            sd[f"{ours}.{our_name}.bias"] = get(f"{hf}.{hf_name}.bias")
        for hf_name, our_name in (("attn.c_attn", "attention.wqkv"), ("attn.c_proj", "attention.wo"),
                                  ("mlp.c_fc", "feed_forward.w_in"), ("mlp.c_proj", "feed_forward.w_out")):
            sd[f"{ours}.{our_name}.weight"] = get(f"{hf}.{hf_name}.weight").t().contiguous()
            sd[f"{ours}.{our_name}.bias"] = get(f"{hf}.{hf_name}.bias")
    return sd


def read_tokenizer(directory: Path) -> Tokenizer:
    from tokenizers import Tokenizer as BackendTokenizer

    path = directory / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{directory} has no tokenizer.json; save the tokenizer with the model")
    try:
        backend = BackendTokenizer.from_file(str(path))
    except Exception as e:
        raise CorruptFileError(f"{path} is not a readable tokenizer ({e}); re-save it") from None
    cfg = _read_json(directory / "tokenizer_config.json") if (directory / "tokenizer_config.json").is_file() else {}
    template = cfg.get("chat_template")
    if (directory / "chat_template.jinja").is_file():
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    if isinstance(template, list):  # named templates: take the default
        template = next((t["template"] for t in template if t.get("name") == "default"), None)

    def token(key: str) -> str | None:
        value = cfg.get(key)
        return value.get("content") if isinstance(value, dict) else value

    # generation_config.json may list several end-of-turn ids.
    extra_eos: list[str] = [*cfg.get("luoxia_extra_eos_tokens", [])]
    gen_path = directory / "generation_config.json"
    if gen_path.is_file():
        eos = _read_json(gen_path).get("eos_token_id")
        for i in eos if isinstance(eos, list) else [eos] if eos is not None else []:
            name = backend.id_to_token(i)
            if name and name != token("eos_token") and name not in extra_eos:
                extra_eos.append(name)
    return Tokenizer(
        backend, bos_token=token("bos_token"), eos_token=token("eos_token"), pad_token=token("pad_token"),
        unk_token=token("unk_token"), add_bos=bool(cfg.get("add_bos_token", False)),
        add_eos=bool(cfg.get("add_eos_token", False)), chat_template=template, extra_eos_tokens=extra_eos,
    )


def _folder_sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + cached_sha256(f).encode())
    return h.hexdigest()


def load_hf(directory: str | os.PathLike) -> ModelBundle:
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ModelNotFoundError(f"{directory} has no config.json; give a Hugging Face model folder or a .gguf file")
    config = read_config(directory)
    tokenizer = read_tokenizer(directory)
    files = weight_files(directory)
    state_dict = convert_state_dict(read_raw_weights(directory), config)
    hf_config = _read_json(directory / "config.json")
    return ModelBundle(
        config=config, state_dict=state_dict, tokenizer=tokenizer, source=str(directory.resolve()),
        sha256=_folder_sha256(files), name=hf_config.get("_name_or_path") or directory.name,
        source_dtype={"bfloat16": "BF16", "float16": "F16"}.get(hf_config.get("torch_dtype") or hf_config.get("dtype"),
                                                               "F32"),
    )


# --- export: our config and weights → a Hugging Face folder ------------------------------------


def hf_config(config: TransformerConfig, tokenizer: Tokenizer | None = None) -> dict:
    """config.json for `config`: model_type llama or qwen2 (RMSNorm, RoPE, SwiGLU) or gpt2."""
    eos = tokenizer.eos_ids[0] if tokenizer is not None and tokenizer.eos_ids else None
    common = {"vocab_size": config.vocab_size, "bos_token_id": tokenizer.bos_id if tokenizer else None,
              "eos_token_id": eos, "pad_token_id": tokenizer.pad_id if tokenizer else None,
              "tie_word_embeddings": config.tie_embeddings, "torch_dtype": "float32"}
    if config.arch == "gpt2":
        return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": config.dim,
                "n_layer": config.n_layers, "n_head": config.n_heads, "n_inner": config.ffn_dim,
                "n_positions": config.max_seq_len, "layer_norm_epsilon": config.norm_eps,
                "activation_function": "gelu_new", **common}
    if config.norm != "rms" or config.mlp != "swiglu" or config.positions != "rope" or config.bias:
        raise UnsupportedModelError(f"cannot export a {config.arch} model with norm={config.norm}, mlp={config.mlp}, "
                                    f"positions={config.positions} as a Hugging Face folder")
    qwen2 = config.arch == "qwen2"
    return {
        "architectures": ["Qwen2ForCausalLM" if qwen2 else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen2 else "llama",
        "hidden_size": config.dim, "intermediate_size": config.ffn_dim, "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads, "num_key_value_heads": config.n_kv_heads, "head_dim": config.head_dim,
        "max_position_embeddings": config.max_seq_len, "rms_norm_eps": config.norm_eps, "hidden_act": "silu",
        "rope_theta": config.rope_base, "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_base},
        "attention_bias": config.qkv_bias and not qwen2, "mlp_bias": False, **common,
    }


def to_hf_state_dict(sd: dict[str, torch.Tensor], config: TransformerConfig) -> dict[str, torch.Tensor]:
    """Our parameter names and layouts → HF's (the inverse of `convert_state_dict`)."""
    sd = {k: v.detach().float().contiguous() for k, v in sd.items()}
    if config.arch == "gpt2":
        out = {"transformer.wte.weight": sd["tok_embeddings.weight"],
               "transformer.wpe.weight": sd["pos_embeddings.weight"],
               "transformer.ln_f.weight": sd["norm.weight"], "transformer.ln_f.bias": sd["norm.bias"]}
        for i in range(config.n_layers):
            hf, ours = f"transformer.h.{i}", f"layers.{i}"
            for hf_name, our_name in (("ln_1", "attention_norm"), ("ln_2", "ffn_norm")):
                out[f"{hf}.{hf_name}.weight"] = sd[f"{ours}.{our_name}.weight"]
                out[f"{hf}.{hf_name}.bias"] = sd[f"{ours}.{our_name}.bias"]
            for hf_name, our_name in (("attn.c_attn", "attention.wqkv"), ("attn.c_proj", "attention.wo"),
                                      ("mlp.c_fc", "feed_forward.w_in"), ("mlp.c_proj", "feed_forward.w_out")):
                out[f"{hf}.{hf_name}.weight"] = sd[f"{ours}.{our_name}.weight"].t().contiguous()
                out[f"{hf}.{hf_name}.bias"] = sd[f"{ours}.{our_name}.bias"]
        if not config.tie_embeddings:
            out["lm_head.weight"] = sd["output.weight"]
        return out
    H, K, D = config.n_heads, config.n_kv_heads, config.head_dim
    out = {"model.embed_tokens.weight": sd["tok_embeddings.weight"], "model.norm.weight": sd["norm.weight"]}
    if not config.tie_embeddings:
        out["lm_head.weight"] = sd["output.weight"]
    for i in range(config.n_layers):
        hf, ours = f"model.layers.{i}", f"layers.{i}"
        out[f"{hf}.input_layernorm.weight"] = sd[f"{ours}.attention_norm.weight"]
        out[f"{hf}.post_attention_layernorm.weight"] = sd[f"{ours}.ffn_norm.weight"]
        kinds = ("weight", "bias") if config.qkv_bias else ("weight",)
        for kind in kinds:
            q, k, v = sd[f"{ours}.attention.wqkv.{kind}"].split((H * D, K * D, K * D))
            for name, t in zip("qkv", (q, k, v)):
                out[f"{hf}.self_attn.{name}_proj.{kind}"] = t.contiguous()
        out[f"{hf}.self_attn.o_proj.weight"] = sd[f"{ours}.attention.wo.weight"]
        gate, up = sd[f"{ours}.feed_forward.w_in.weight"].chunk(2)
        out[f"{hf}.mlp.gate_proj.weight"] = gate.contiguous()
        out[f"{hf}.mlp.up_proj.weight"] = up.contiguous()
        out[f"{hf}.mlp.down_proj.weight"] = sd[f"{ours}.feed_forward.w_out.weight"]
    return out


def save_hf(directory: str | os.PathLike, config: TransformerConfig, state_dict: dict[str, torch.Tensor],
            tokenizer: Tokenizer, name: str = "") -> Path:
    """Write a Hugging Face folder (config.json, model.safetensors, tokenizer files, generation_config.json)
    that `load_hf` and transformers' `from_pretrained` read. Each file is written atomically."""
    from safetensors.torch import save_file

    from luoxia.core import atomic

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg = hf_config(config, tokenizer)
    if name:
        cfg["_name_or_path"] = name
    with atomic.atomic_path(directory / "model.safetensors") as tmp:
        save_file(to_hf_state_dict(state_dict, config), tmp, metadata={"format": "pt"})
    tokenizer.save(directory)
    gen = {"eos_token_id": cfg["eos_token_id"], "pad_token_id": cfg["pad_token_id"]}
    atomic.write_text(directory / "generation_config.json", json.dumps(gen, indent=2))
    atomic.write_text(directory / "config.json", json.dumps(cfg, indent=2))
    return directory
