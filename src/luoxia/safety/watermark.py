"""A text watermark after Kirchenbauer et al. 2023, "A Watermark for Large Language Models" (arXiv 2301.10226).

Generation (the paper's Algorithm 2, "soft red list"): at each step, the previous token s(t-1),
hashed with a secret key, seeds a random permutation of the vocabulary V; its first γ|V| tokens
are the green list G. δ is added to the logits of G before sampling:

    l̂_k = l_k + δ  if k ∈ G,   l_k otherwise

Detection needs only the key and the tokenizer: count the green tokens |s|_G among T scored
tokens (each scored against the green list seeded by the token before it) and test

    z = (|s|_G − γT) / sqrt(T γ (1 − γ))         (the paper's Eq. 2), one-sided p = P(N(0,1) > z)

Seeding equals transformers' `WatermarkLogitsProcessor(seeding_scheme="lefthash", context_width=1)`:
seed = hash_key × previous token mod (2^64 − 1), `torch.randperm(|V|)` from a CPU generator, the
first int(γ|V|) ids. With an integer key our green lists, green counts and z-scores equal
transformers' `WatermarkDetector` (tested); a text key is mapped to an integer by SHA-256.
The green lists are drawn on the CPU whatever device generates, so detection never needs a GPU.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from typing import TYPE_CHECKING

import torch

from luoxia.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from luoxia.text.sampling import Processor
    from luoxia.text.tokenizer import Tokenizer

SCHEME = "kirchenbauer2023-lefthash-1"


@dataclasses.dataclass(frozen=True)
class WatermarkConfig:
    """key: a secret (a decimal integer is used as transformers' hashing_key as is); gamma: the
    green-list fraction γ; delta: the logit bias δ."""

    key: str
    gamma: float = 0.25
    delta: float = 2.0

    def validate(self) -> WatermarkConfig:
        if not str(self.key):
            raise InvalidParameterError("the watermark key is empty; give a secret string (--watermark KEY)")
        if not 0 < self.gamma < 1:
            raise InvalidParameterError(f"watermark gamma must be in (0, 1), got {self.gamma}")
        if not 0 <= self.delta <= 20:
            raise InvalidParameterError(f"watermark delta must be in [0, 20], got {self.delta}")
        return self

    @property
    def hash_key(self) -> int:
        key = str(self.key)
        if key.isdigit() and 0 < int(key) < 2**63:
            return int(key)
        return int.from_bytes(hashlib.sha256(key.encode()).digest()[:7], "big") | 1

    def to_dict(self) -> dict:
        """What provenance records: the scheme and parameters, and a key id, never the key."""
        return {"scheme": SCHEME, "gamma": self.gamma, "delta": self.delta,
                "key_id": hashlib.sha256(str(self.key).encode()).hexdigest()[:8]}


@functools.lru_cache(maxsize=8192)
def _green(hash_key: int, previous: int, vocab_size: int, gamma: float) -> torch.Tensor:
    generator = torch.Generator(device="cpu")
    generator.manual_seed((hash_key * previous) % (2**64 - 1))
    return torch.randperm(vocab_size, generator=generator)[: int(vocab_size * gamma)]


def green_list(previous: int, vocab_size: int, config: WatermarkConfig) -> torch.Tensor:
    """The green token ids (γ|V|,) that follow token `previous`."""
    return _green(config.hash_key, int(previous), vocab_size, config.gamma)


def watermark_processor(config: WatermarkConfig) -> Processor:
    """Add δ to the green tokens' scores of every row, seeded by its last token."""
    config.validate()

    def apply(tokens: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if tokens.shape[1] < 1:
            return scores
        scores = scores.clone()
        for row, previous in enumerate(tokens[:, -1].tolist()):
            green = green_list(previous, scores.shape[-1], config).to(scores.device)
            scores[row, green] += config.delta
        return scores

    return apply


@dataclasses.dataclass
class Detection:
    scored: int  # T: tokens scored (all but the first)
    green: int  # |s|_G
    z_score: float
    p_value: float

    @property
    def green_fraction(self) -> float:
        return self.green / self.scored if self.scored else 0.0

    def to_dict(self) -> dict:
        return {"scored": self.scored, "green": self.green, "green_fraction": round(self.green_fraction, 4),
                "z_score": round(self.z_score, 4), "p_value": self.p_value}


def z_score(green: int, scored: int, gamma: float) -> float:
    return (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma)) if scored else 0.0


def p_value(z: float) -> float:
    """One-sided P(N(0, 1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def detect_ids(ids: list[int], vocab_size: int, config: WatermarkConfig) -> Detection:
    """Score token ids: token t is green when it is in the green list seeded by token t − 1."""
    if len(ids) < 2:
        raise InvalidParameterError("the text is too short to test for a watermark; give at least a few words")
    green = sum(bool((green_list(prev, vocab_size, config) == tok).any()) for prev, tok in zip(ids, ids[1:]))
    scored = len(ids) - 1
    z = z_score(green, scored, config.gamma)
    return Detection(scored, green, z, p_value(z))


def strip_labels(text: str) -> str:
    """The text without luoxia's own visible notice and Markdown label front matter (not model output)."""
    from luoxia.core.artifact import TEXT_NOTICE

    if text.startswith("---\nAIGC: ") and (end := text.find("\n---\n", 3)) >= 0:
        text = text[end + 5:]
    text = text.rstrip()
    if text.endswith(TEXT_NOTICE):
        text = text[: -len(TEXT_NOTICE)].rstrip()
    return text


def detect_text(text: str, tokenizer: Tokenizer, vocab_size: int, config: WatermarkConfig) -> Detection:
    """Tokenize `text` (without special tokens, and without luoxia's label) and score it."""
    return detect_ids(tokenizer.encode(strip_labels(text), add_special_tokens=False), vocab_size, config)
