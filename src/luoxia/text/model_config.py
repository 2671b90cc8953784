"""The transformer's shape and family (`TransformerConfig`) and named presets: plain data, no PyTorch.

Kept apart from `text.model` so that what reads a model's config (the weights cache, the NumPy
first-token path in `text.head_start`) starts without importing torch.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass
class TransformerConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    n_kv_heads: int = 0  # 0: same as n_heads (no grouping)
    head_dim: int = 0  # 0: dim // n_heads
    max_seq_len: int = 2048
    norm: Literal["rms", "layer"] = "rms"
    norm_eps: float = 1e-5
    mlp: Literal["swiglu", "gelu"] = "swiglu"
    positions: Literal["rope", "learned"] = "rope"
    rope_base: float = 10000.0
    qkv_bias: bool = False  # Qwen2
    bias: bool = False  # GPT-2: biases on every linear layer and norm
    tie_embeddings: bool = True
    arch: str = "llama"  # the family name, kept for export and provenance

    def __post_init__(self) -> None:
        if self.n_kv_heads == 0:
            self.n_kv_heads = self.n_heads
        if self.head_dim == 0:
            self.head_dim = self.dim // self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")

    @classmethod
    def from_dict(cls, d: dict) -> TransformerConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Named presets, for tests and training from scratch.
PRESETS: dict[str, dict] = {
    "smollm2-135m": dict(
        vocab_size=49152, dim=576, n_layers=30, n_heads=9, n_kv_heads=3, ffn_dim=1536,
        max_seq_len=8192, rope_base=100000.0, arch="llama",
    ),
    "gpt2-124m": dict(
        vocab_size=50257, dim=768, n_layers=12, n_heads=12, ffn_dim=3072, max_seq_len=1024,
        norm="layer", mlp="gelu", positions="learned", bias=True, arch="gpt2",
    ),
}
