"""`text.model.Transformer` in NumPy: float32, one prompt, inference only — the model before torch has loaded.

`import torch` takes over a second; NumPy imports in a twentieth of that. `text.head_start` runs a prompt
through this copy of the network to show the first tokens while torch loads. It is the same network,
chosen by the same `TransformerConfig` (Llama: RMSNorm, RoPE, grouped-query attention, SwiGLU; Qwen2's
q/k/v biases; GPT-2: LayerNorm, learned positions, GELU), read from the same parameter names, and the
tests hold its logits to the torch model's. Its weights are NumPy arrays; `formats.cache.map_weights`
gives the cache's float32 ones, mapped into memory rather than read.

Shapes: T tokens in this call, S tokens in the cache after it, C model width, H query heads, K key/value
heads (G = H / K queries share each), D head width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from luoxia.text.model_config import TransformerConfig


def rope_cos_sin(positions: np.ndarray, head_dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (T, D) of the rotary angles, "rotate half" layout, computed as `text.model` does."""
    exponents = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inv_freq = np.float32(1.0) / np.float32(base) ** exponents
    angles = positions.astype(np.float32)[:, None] * inv_freq
    angles = np.concatenate((angles, angles), axis=-1)
    return np.cos(angles), np.sin(angles)


def apply_rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate (heads, T, D) by the angles (T, D)."""
    x1, x2 = np.split(x, 2, axis=-1)
    return x * cos + np.concatenate((-x2, x1), axis=-1) * sin


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.float32(math.sqrt(2.0 / math.pi)) * (x + np.float32(0.044715) * x ** 3)))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class NumpyTransformer:
    """The network over `weights` (our parameter names, float32 arrays) with a key/value cache of `max_len`
    positions. `forward` takes the next tokens of the one sequence and returns the last one's logits."""

    def __init__(self, config: TransformerConfig, weights: dict[str, np.ndarray], max_len: int):
        self.config, self.w = config, weights
        c = config
        self.k_cache = np.zeros((c.n_layers, c.n_kv_heads, max_len, c.head_dim), dtype=np.float32)
        self.v_cache = np.zeros_like(self.k_cache)
        self.length = 0  # positions in the cache

    @property
    def max_len(self) -> int:
        return self.k_cache.shape[2]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        y = x @ self.w[f"{name}.weight"].T  # (out, in) as nn.Linear stores it
        bias = self.w.get(f"{name}.bias")
        return y if bias is None else y + bias

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        c, weight = self.config, self.w[f"{name}.weight"]
        if c.norm == "rms":
            return weight * (x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + np.float32(c.norm_eps)))
        centred = x - x.mean(axis=-1, keepdims=True)
        normed = centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + np.float32(c.norm_eps))
        bias = self.w.get(f"{name}.bias")
        return weight * normed if bias is None else weight * normed + bias

    def _attention(self, x: np.ndarray, layer: int, rope: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        c, prefix = self.config, f"layers.{layer}.attention"
        T, H, K, D = x.shape[0], c.n_heads, c.n_kv_heads, c.head_dim
        start, end = self.length, self.length + T
        qkv = self._linear(x, f"{prefix}.wqkv")
        q = qkv[:, :H * D].reshape(T, H, D).transpose(1, 0, 2)  # (H, T, D)
        k = qkv[:, H * D:(H + K) * D].reshape(T, K, D).transpose(1, 0, 2)  # (K, T, D)
        v = qkv[:, (H + K) * D:].reshape(T, K, D).transpose(1, 0, 2)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        self.k_cache[layer, :, start:end] = k
        self.v_cache[layer, :, start:end] = v
        keys, values = self.k_cache[layer, :, None, :end], self.v_cache[layer, :, None, :end]  # (K, 1, S, D)
        scores = q.reshape(K, H // K, T, D) @ keys.transpose(0, 1, 3, 2) / np.float32(math.sqrt(D))  # (K, G, T, S)
        future = np.arange(end)[None, :] > np.arange(start, end)[:, None]  # (T, S): keys after each query
        scores = np.where(future, np.float32(-np.inf), scores)
        out = (softmax(scores) @ values).reshape(H, T, D).transpose(1, 0, 2).reshape(T, H * D)
        return self._linear(out, f"{prefix}.wo")

    def _feed_forward(self, x: np.ndarray, layer: int) -> np.ndarray:
        prefix = f"layers.{layer}.feed_forward"
        h = self._linear(x, f"{prefix}.w_in")
        if self.config.mlp == "swiglu":
            gate, up = np.split(h, 2, axis=-1)
            h = silu(gate) * up
        else:
            h = gelu_tanh(h)
        return self._linear(h, f"{prefix}.w_out")

    def forward(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits (vocab,) after `tokens`, which continue what the cache holds; the cache keeps them."""
        c, T = self.config, len(tokens)
        if self.length + T > self.max_len:
            raise ValueError(f"{self.length + T} positions do not fit a cache of {self.max_len}")
        positions = np.arange(self.length, self.length + T)
        x = self.w["tok_embeddings.weight"][np.asarray(tokens)]  # (T, C)
        rope = None
        if c.positions == "rope":
            rope = rope_cos_sin(positions, c.head_dim, c.rope_base)
        else:
            x = x + self.w["pos_embeddings.weight"][positions]
        for layer in range(c.n_layers):
            x = x + self._attention(self._norm(x, f"layers.{layer}.attention_norm"), layer, rope)
            x = x + self._feed_forward(self._norm(x, f"layers.{layer}.ffn_norm"), layer)
        self.length += T
        output = self.w["tok_embeddings.weight" if c.tie_embeddings else "output.weight"]
        return self._norm(x[-1], "norm") @ output.T

