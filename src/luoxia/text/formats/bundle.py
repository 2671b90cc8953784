"""What every format loader returns: a model config, its weights in our layout, and the tokenizer."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from luoxia.text.model_config import TransformerConfig
from luoxia.text.tokenizer import Tokenizer

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass
class ModelBundle:
    config: TransformerConfig
    state_dict: dict[str, torch.Tensor]  # keys as in `text.model.Transformer`
    tokenizer: Tokenizer
    source: str  # the file or folder it came from
    sha256: str  # hash of the source (the GGUF file, or the folder's weight files)
    name: str = ""  # a human-readable model name from the file's metadata
    source_dtype: str = "F32"  # how most of the source's weights are stored: F32, BF16, Q4_1, Q8_0, ...
