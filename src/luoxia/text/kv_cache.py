"""A preallocated (static) key/value cache for one attention layer.

Static shapes keep decoding free of reallocation and ready for `torch.compile`; beam search
reorders rows in place with `reorder`.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values (B, K, max_len, D). A plain object, not an `nn.Module`: `torch.compile` keeps the
    shapes of module buffers static, and a cache's batch and length change from call to call."""

    def __init__(self, batch_size: int, n_kv_heads: int, max_len: int, head_dim: int, dtype, device=None):
        shape = (batch_size, n_kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)

    @classmethod
    def of(cls, k: torch.Tensor, v: torch.Tensor) -> KVCache:
        """A cache over existing key and value tensors (B, K, max_len, D), not copied."""
        cache = cls.__new__(cls)
        cache.k, cache.v = k, v
        return cache

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def update(self, start: int | torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               read: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v (B, K, T, D) at positions [start, start+T), in the cache's dtype; return the cache up
        to start+T or, when `start` is a tensor, its first `read` columns (default all: fixed shapes for a CUDA
        graph, whose mask hides the rest; a packaged step reads only the written ones, `text.aot_step`)."""
        if isinstance(start, torch.Tensor):
            index = start + torch.arange(k.shape[2], device=k.device)
            self.k.index_copy_(2, index, k.to(self.k.dtype))
            self.v.index_copy_(2, index, v.to(self.v.dtype))
            return self.k[:, :, :read], self.v[:, :, :read]
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]

    def repeat_batch(self, n: int) -> None:
        """Grow a batch-1 cache to n identical rows (a prompt prefilled once, then searched n ways)."""
        self.k = self.k.expand(n, -1, -1, -1).contiguous()
        self.v = self.v.expand(n, -1, -1, -1).contiguous()

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep row `rows[i]` as row i (beam search picks which beams live on)."""
        self.k.copy_(self.k.index_select(0, rows))
        self.v.copy_(self.v.index_select(0, rows))
