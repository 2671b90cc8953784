"""The decoding parameters (`GenerationConfig`): plain data, no PyTorch, so that a command can check
them before torch loads (`luoxia generate` does, and `text.head_start` decides from them)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from luoxia.core.errors import InvalidParameterError

if TYPE_CHECKING:
    from luoxia.safety.watermark import WatermarkConfig
    from luoxia.text.sampling import Processor

PREDICTION_DRAFT = 8  # draft length when a prediction is given without prompt_lookup_num_tokens
DRAFT_TOKENS = 8  # a draft model's longest draft (text.draft_model); each limit adapts (text.speculative)


def check_draft_tokens(tokens: int) -> None:
    if not 1 <= tokens <= 64:
        raise InvalidParameterError(f"draft tokens must be in [1, 64], got {tokens}")


@dataclasses.dataclass
class GenerationConfig:
    """Decoding parameters, named and defaulted as in transformers' `generate` (greedy by default).

    Sampling happens only with `do_sample=True`; `temperature=0` then means greedy.
    """

    max_new_tokens: int = 256
    min_new_tokens: int = 0  # end-of-sequence tokens are forbidden before this many
    max_length: int | None = None  # prompt + new tokens; overrides max_new_tokens when given
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float = 1.0
    min_p: float | None = None
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0  # OpenAI's: minus this × count of each generated token
    presence_penalty: float = 0.0  # OpenAI's: minus this once for each token generated at all
    no_repeat_ngram_size: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | Literal["never"] = False
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    watermark: WatermarkConfig | None = None  # Kirchenbauer et al. green-list watermark (safety.watermark)
    prompt_lookup_num_tokens: int = 0  # speculative decoding: draft up to this many tokens (text.speculative)
    prediction: str | None = None  # text the answer is expected to resemble: drafts come from it too (OpenAI's)

    def validate(self) -> GenerationConfig:
        checks = [
            (self.max_new_tokens >= 1, f"max_new_tokens must be >= 1, got {self.max_new_tokens}"),
            (self.min_new_tokens >= 0, f"min_new_tokens must be >= 0, got {self.min_new_tokens}"),
            (self.max_length is None or self.max_length >= 1, f"max_length must be >= 1, got {self.max_length}"),
            (self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}"),
            (0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}"),
            (self.top_k is None or self.top_k >= 0, f"top_k must be >= 0, got {self.top_k}"),
            (self.min_p is None or 0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p}"),
            (self.repetition_penalty > 0, f"repetition_penalty must be > 0, got {self.repetition_penalty}"),
            (-2 <= self.frequency_penalty <= 2, f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty}"),
            (-2 <= self.presence_penalty <= 2, f"presence_penalty must be in [-2, 2], got {self.presence_penalty}"),
            (self.no_repeat_ngram_size >= 0, f"no_repeat_ngram_size must be >= 0, got {self.no_repeat_ngram_size}"),
            (self.num_beams >= 1, f"num_beams must be >= 1, got {self.num_beams}"),
            (self.early_stopping in (True, False, "never"), "early_stopping must be true, false or 'never'"),
            (0 <= self.prompt_lookup_num_tokens <= 64,
             f"prompt_lookup_num_tokens must be in [0, 64], got {self.prompt_lookup_num_tokens}"),
            (not ((self.prompt_lookup_num_tokens or self.prediction) and self.num_beams > 1),
             "prompt lookup drafts for greedy or sampled decoding, not beam search; drop one of them"),
            (not (self.num_beams > 1 and self.sampling), "beam search with sampling is not supported; "
                                                          "use num_beams=1 to sample or do_sample=False for beams"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidParameterError(message)
        if self.watermark is not None:
            self.watermark.validate()
        return self

    @property
    def lookup(self) -> int:
        """Draft tokens per step of speculative decoding: as asked, or PREDICTION_DRAFT with a prediction."""
        return self.prompt_lookup_num_tokens or (PREDICTION_DRAFT if self.prediction else 0)

    @property
    def sampling(self) -> bool:
        return self.do_sample and self.temperature > 0

    def processors(self, eos_ids: Sequence[int] = (), prompt_len: int = 0) -> list[Processor]:
        from luoxia.safety.watermark import watermark_processor
        from luoxia.text import sampling

        return sampling.build_processors(
            do_sample=self.sampling, temperature_=self.temperature, top_k_=self.top_k, top_p_=self.top_p,
            min_p_=self.min_p, repetition_penalty_=self.repetition_penalty,
            frequency_penalty_=self.frequency_penalty, presence_penalty_=self.presence_penalty,
            no_repeat_ngram_size=self.no_repeat_ngram_size, min_new_tokens_=self.min_new_tokens, eos_ids=eos_ids,
            prompt_len=prompt_len, watermark_=watermark_processor(self.watermark) if self.watermark else None,
        )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["stop"] = list(self.stop)
        if self.watermark is not None:
            d["watermark"] = self.watermark.to_dict()  # never the key
        return d
