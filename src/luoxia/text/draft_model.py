"""Speculative decoding with a draft model: a cheaper model of the same tokenizer proposes tokens.

The draft model decodes a few tokens ahead on its own (greedy, or sampling from its own processed
distribution q); the model then reads the newest token and the draft in one forward and keeps the
draft up to the first token it disagrees with, plus one of its own (`text.speculative`). Greedy text
is the model's own greedy text; sampled tokens are distributed as the model's p (a drawn draft token
is kept with probability min(1, p/q), Leviathan et al. 2023). How much it pays depends on the ratio of
the two models' step costs and on how often they agree: llama.cpp's `--model-draft`, transformers'
`assistant_model`.

The embedded SmolLM2-135M has no smaller sibling, but its int4 quantization is a draft for the same
model in float32, the precision that matches transformers token for token: the int4 package's step
costs about 8 ms on the project's CPU against 27 ms in float32, and the float32 text comes a median
1.55x sooner (`benchmarks/text_draft_model.py`). A smaller model of the same family (SmolLM2-135M for
SmolLM2-360M or -1.7B) drafts the same way.

The draft model keeps its own cache. It holds the keys and values of the text so far and of the last
draft; when the model keeps only part of a draft, the rest is overwritten on the next call (`seen`
goes back), so nothing is recomputed but the tokens it has not read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.text import sampling
from luoxia.text.generate import padding_mask
from luoxia.text.generation_config import DRAFT_TOKENS, check_draft_tokens
from luoxia.text.model import Transformer
from luoxia.text.sampling import Processor


@dataclasses.dataclass
class DraftModel:
    """A draft model ready for `speculative_steps`: its network, its one-token forward (a compiled or
    ahead-of-time step, or None for the eager model), a name for the provenance, and the longest draft."""

    model: Transformer
    name: str
    step: Callable[..., torch.Tensor] | None = None
    tokens: int = DRAFT_TOKENS

    def __post_init__(self) -> None:
        check_draft_tokens(self.tokens)

    def drafter(self, prompt: Sequence[int], max_len: int, processors: Sequence[Processor], do_sample: bool,
                generator: torch.Generator | None, eos: set[int]) -> ModelDrafter:
        return ModelDrafter(self.model, self.step, prompt, max_len, processors, do_sample, generator, eos)


def check_compatible(model: Transformer, tokenizer, draft: Transformer, draft_tokenizer, name: str) -> None:
    """Raise unless `draft` can draft for `model`: the same vocabulary, token for token."""
    probe = "Speculative decoding: 落霞与孤鹜齐飞, 1234 + 5678 = 6912.\n"
    ours, theirs = (t.encode(probe, add_special_tokens=False) for t in (tokenizer, draft_tokenizer))
    same = (model.config.vocab_size == draft.config.vocab_size and ours == theirs
            and list(tokenizer.eos_ids) == list(draft_tokenizer.eos_ids))
    if not same:
        raise InvalidParameterError(
            f"the draft model {name} has another tokenizer ({draft.config.vocab_size} tokens against "
            f"{model.config.vocab_size}); a draft model must share the model's vocabulary, e.g. a smaller "
            "model of the same family")


class ModelDrafter:
    """Drafts for one generation by decoding `k` tokens ahead with the draft model (see the module notes)."""

    def __init__(self, model: Transformer, step: Callable[..., torch.Tensor] | None, prompt: Sequence[int],
                 max_len: int, processors: Sequence[Processor], do_sample: bool, generator: torch.Generator | None,
                 eos: set[int]):
        device = model.tok_embeddings.weight.device
        self.model, self.step = model, step or model
        self.processors, self.do_sample, self.generator, self.eos = processors, do_sample, generator, eos
        self.tokens = torch.zeros((1, max_len), dtype=torch.long, device=device)
        self.tokens[0, :len(prompt)] = torch.tensor(list(prompt), dtype=torch.long)
        self.ids = list(prompt)  # the text so far, then the last draft
        self.n = len(prompt)  # tokens of the text so far
        self.seen = 0  # tokens (of `ids`) whose keys and values are in the cache
        self.caches = model.new_caches(1, max_len)

    def accept(self, token: int) -> None:
        """The next token of the text: drafted (its cache entry stays) or not (the draft's rest is dropped)."""
        if self.n < len(self.ids) and self.ids[self.n] != token:
            del self.ids[self.n:]
            self.seen = min(self.seen, self.n)
        if self.n == len(self.ids):
            self.ids.append(token)
            self.tokens[0, self.n] = token
        self.n += 1

    @torch.inference_mode()
    def draft(self, k: int) -> tuple[list[int], torch.Tensor | None]:
        """Up to `k` tokens (fewer when one is an end of sequence) and, when sampling, their q (k, V)."""
        del self.ids[self.n:]  # a draft the text took only the start of, its last taken token being the model's own
        self.seen = min(self.seen, self.n - 1)  # at least the newest token is read: its logits start the draft
        if k <= 0:
            return [], None
        logits = self._read(self.seen, self.n)
        drafts, dists = [], []
        for i in range(k):
            at = self.n + i
            scores = sampling.apply_processors(self.processors, self.tokens[:, :at], logits[:, -1].float())
            token = int(sampling.pick_next(scores, self.do_sample, self.generator)[0])
            if self.do_sample:
                dists.append(scores[0].softmax(dim=-1))
            drafts.append(token)
            self.tokens[0, at] = token
            if token in self.eos or i == k - 1:
                break
            logits = self._read(at, at + 1)
        self.ids.extend(drafts)
        return drafts, torch.stack(dists) if dists else None

    def _read(self, start: int, end: int) -> torch.Tensor:
        """Put tokens [start, end) into the cache; the logits at `end - 1` (B, 1, V)."""
        feed = self.tokens[0, start:end][None]
        if start == 0:  # the prompt: eagerly, as the model's own prompt (the compiled steps are for short calls)
            logits = self.model(feed, self.caches, 0, last_only=True)
        else:  # one token, or the last two after a draft kept whole: causal
            causal = None if end - start == 1 else padding_mask(
                torch.ones((1, end), dtype=torch.bool, device=feed.device), start, end)
            logits = self.step(feed, self.caches, start, None, causal)[:, -1:]
        self.seen = end
        return logits
