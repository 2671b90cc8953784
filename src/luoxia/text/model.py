"""A decoder-only transformer covering the Llama family, Qwen2 and GPT-2, chosen by its config.

    Llama:  RMSNorm, rotary positions (RoPE), grouped-query attention, SwiGLU, no biases
    Qwen2:  Llama + biases on the q/k/v projections
    GPT-2:  LayerNorm, learned positions, GELU (tanh), biases everywhere

The q/k/v projections are fused into one matrix (`wqkv`) and so are SwiGLU's gate and up
projections (`w_in`): fewer, larger matmuls are faster at batch 1. The `formats` modules split and
join weights to and from other layouts. This file holds the network only: no I/O, no sampling.

Shapes: B batch, T tokens in this call, S tokens in the cache after this call, C model width,
H query heads, K key/value heads, D head width.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from luoxia.text import decode_attention
from luoxia.text.kv_cache import KVCache
from luoxia.text.model_config import TransformerConfig


def rope_cos_sin(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the rotary angles, (..., T, D), in the "rotate half" layout of HF Llama."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    angles = positions.float()[..., None] * inv_freq  # (..., T, D/2)
    angles = torch.cat((angles, angles), dim=-1)  # (..., T, D)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, T, D) by the angles; cos/sin are (T, D) or (B, T, D)."""
    if cos.dim() == 3:
        cos, sin = cos[:, None], sin[:, None]  # broadcast over heads
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 as HF Llama does, then scale in the input's dtype.
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def make_norm(config: TransformerConfig) -> nn.Module:
    if config.norm == "rms":
        return RMSNorm(config.dim, config.norm_eps)
    return nn.LayerNorm(config.dim, eps=config.norm_eps, bias=config.bias)


class Attention(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        qkv_out = (config.n_heads + 2 * config.n_kv_heads) * config.head_dim
        self.wqkv = nn.Linear(config.dim, qkv_out, bias=config.bias or config.qkv_bias)
        self.wo = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=config.bias)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: KVCache | None,
        start: int | torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        H, K, D = self.n_heads, self.n_kv_heads, self.head_dim
        qkv = self.wqkv(x).view(B, T, H + 2 * K, D).transpose(1, 2)  # (B, heads, T, D): H of q, K of k, K of v
        qk, v = qkv[:, :H + K], qkv[:, H + K:]
        if rope is not None:
            qk = apply_rope(qk, *rope)  # queries and keys in one pass: fewer small ops per step
        q, k = qk.split((H, K), dim=1)  # (B, H, T, D), (B, K, T, D)
        if cache is not None:
            # (B, K, S, D), in the cache's dtype (`Transformer.cache_dtype`); S the mask's length if there is one
            k, v = cache.update(start, k, v, read=None if mask is None else mask.shape[-1])
        # Causal without an explicit mask only when queries and keys start together (`Transformer.forward`
        # makes the mask for several tokens after cached ones).
        is_causal = mask is None and T > 1 and k.shape[2] == T
        on_cpu_cache = cache is not None and k.device.type == "cpu"
        if (on_cpu_cache and torch.compiler.is_compiling() and decode_attention.KERNEL.loaded and not is_causal
                and k.dtype in (torch.float32, torch.bfloat16) and decode_attention.supports(D)):
            # A compiled step's new tokens (`text.decode_attention`); eager forwards keep PyTorch's rounding.
            y = torch.ops.luoxia.decode_attention(q.float(), k, v, mask)
        else:
            if on_cpu_cache and k.dtype == torch.bfloat16:  # attention in float32 (`Transformer.cache_dtype`)
                k, v = k.float(), v.float()
            y = F.scaled_dot_product_attention(q.to(k.dtype), k, v, attn_mask=mask, is_causal=is_causal,
                                               enable_gqa=K != H).transpose(1, 2).reshape(B, T, H * D)
        return self.wo(y.to(x.dtype))


class FeedForward(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        n_in = 2 * config.ffn_dim if self.swiglu else config.ffn_dim  # gate and up, fused
        self.w_in = nn.Linear(config.dim, n_in, bias=config.bias)
        self.w_out = nn.Linear(config.ffn_dim, config.dim, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.w_in(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h, approximate="tanh")
        return self.w_out(h)


class Block(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.attention_norm = make_norm(config)
        self.attention = Attention(config)
        self.ffn_norm = make_norm(config)
        self.feed_forward = FeedForward(config)

    def forward(self, x, rope, cache, start, mask):
        x = x + self.attention(self.attention_norm(x), rope, cache, start, mask)
        return x + self.feed_forward(self.ffn_norm(x))


class Transformer(nn.Module):
    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        # Embeddings are created uninitialised (`_weight`): loaders fill them, `init_weights` trains
        # from scratch, and skipping nn.Embedding's random init on the meta device keeps loading fast.
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim, _weight=torch.empty(config.vocab_size,
                                                                                                config.dim))
        if config.positions == "learned":
            self.pos_embeddings = nn.Embedding(config.max_seq_len, config.dim,
                                               _weight=torch.empty(config.max_seq_len, config.dim))
        self.layers = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = make_norm(config)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight

    def init_weights(self, std: float = 0.02) -> None:
        """GPT-2 style initialisation for training from scratch (residual projections scaled down)."""
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p) if name.endswith("norm.weight") else nn.init.zeros_(p)
            elif name.endswith(("wo.weight", "w_out.weight")):
                nn.init.normal_(p, std=std / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(p, std=std)

    def forward(
        self,
        tokens: torch.Tensor,
        caches: list[KVCache] | None = None,
        start: int | torch.Tensor = 0,
        positions: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits for `tokens` (B, T): (B, T, vocab), or (B, 1, vocab) with `last_only`.

        `caches` (one per layer) hold keys and values of positions [0, start); this call writes
        [start, start+T). `positions` (B, T) overrides the default start..start+T-1 (left-padded
        batches). `mask` (B, 1, T, S) is a boolean attention mask (True = attend), needed only
        when some keys are padding; otherwise attention is plain causal. With a tensor `start`, attention
        reads the cache's first S columns, S the mask's length: the whole cache in a CUDA graph (fixed
        shapes, `text.cuda_graph`, where `mask` hides the unwritten keys), the written ones in a
        packaged step (`text.aot_step`)."""
        B, T = tokens.shape
        if positions is None:
            positions = start + torch.arange(T, device=tokens.device)
        if mask is None and T > 1 and isinstance(start, int) and start > 0:  # causal after the cached positions
            mask = torch.ones(T, start + T, dtype=torch.bool, device=tokens.device).tril(start)
        x = self.tok_embeddings(tokens)  # (B, T, C)
        rope = None
        if self.config.positions == "rope":
            cos, sin = rope_cos_sin(positions, self.config.head_dim, self.config.rope_base)
            rope = (cos.to(x.dtype), sin.to(x.dtype))
        else:
            x = x + self.pos_embeddings(positions)
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, caches[i] if caches is not None else None, start, mask)
        if last_only:
            x = x[:, -1:]
        return self.output(self.norm(x))

    @property
    def cache_dtype(self) -> torch.dtype:
        """The dtype of keys and values in the cache: the model's, except float32 for a float16 model on the CPU.
        Attention over a CPU cache runs in float32 all the same: PyTorch's CPU attention is slow in bfloat16
        without AMX (one decode step of SmolLM2's, 9 query heads over 160 cached positions, 108 against 24 µs
        on an AVX-512 AMD EPYC), so eager forwards widen a bfloat16 cache's keys and values first, and compiled
        steps read them through `text.decode_attention`, which widens as it reads: a 16-row step reads half the
        bytes of a float32 cache (91 against 171 µs a layer at 96 positions), and the cache takes half the memory
        (SmolLM2-135M: 23 KB a position)."""
        weight = self.tok_embeddings.weight
        if weight.device.type == "cpu" and weight.dtype == torch.float16:
            return torch.float32
        return weight.dtype

    def new_caches(self, batch_size: int, max_len: int, dtype: torch.dtype | None = None) -> list[KVCache]:
        """Preallocated key/value caches for `max_len` positions, one per layer."""
        c = self.config
        device = self.tok_embeddings.weight.device
        return [
            KVCache(batch_size, c.n_kv_heads, max_len, c.head_dim, dtype or self.cache_dtype, device)
            for _ in range(c.n_layers)
        ]
