"""Speculative decoding: draft tokens copied from earlier in the text (or from a draft model), checked in one forward.

Text that restates its input (a summary, a news item from data, an edited passage, code) often
continues the way the same few tokens continued earlier in the prompt or the answer. So after each
step we look up the last n tokens (n = 3, then 2) where they occurred last before, and propose the
k tokens that followed them there as a draft (Saxena's prompt lookup decoding, transformers'
`prompt_lookup_num_tokens`). The model reads the newest token and the draft in one forward, which
on a CPU at batch 1 costs far less than k forwards (its weights are read once: w8a8's eight-token
forward costs 1.45x a one-token one), and keeps the draft up to the first token it disagrees with,
plus one token of its own. With no match the step is an ordinary one-token step. The same loop checks
drafts from a cheaper model of the same tokenizer (`text.draft_model`, a `Drafter` like `PromptLookup`).

A single matching token is no evidence: drafting on one (as transformers does) halved the
acceptance rate of free writing here (20% to 10%) and made it 0.8x slower; from two on, free writing
runs at 0.93-1.03x, and answers that restate the prompt at a median 1.8x with w8a8
(benchmarks/text_speculative.py).

How long a draft may be adapts: the limit starts at k, doubles (up to k) when the model kept a whole
draft, and drops to one more than it kept otherwise. A check's cost grows with its length, and how fast depends on the
step: the embedded int4 model's nine-token check costs 3.5x its one-token step, w8a8's 1.45x. Always
drafting k = 8 made lookup with int4 (the default, through the ahead-of-time package) 0.83x on free
writing, where drafts are mostly wrong, and 1.08x on answers that restate the prompt (median); with
the adaptive length, in the same session, 1.02x and 1.33x, and w8a8 1.02x and 1.76x (1.74x before).

Greedy: a draft token is kept when it is the argmax, so the text is the greedy text (up to float
rounding between a 1-token and a k-token forward, which can flip a near-tie). Sampling: a draft
token d is kept with probability p(d) and otherwise the token is drawn from p without d
(renormalised): speculative sampling (Leviathan et al. 2023; Chen et al. 2023) with a draft that
puts all its mass on d, so every token is still distributed as p. The same seed gives other text
than without the lookup (the random numbers are used differently), and the same text again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from luoxia.text import sampling
from luoxia.text.generate import padding_mask
from luoxia.text.generation_config import GenerationConfig
from luoxia.text.model import Transformer

if TYPE_CHECKING:
    from luoxia.text.draft_model import DraftModel

MAX_NGRAM, MIN_NGRAM = 3, 2


@dataclasses.dataclass
class SpeculationStats:
    forwards: int = 0  # model calls after the prompt's
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens the model agreed with
    drafter: str = "lookup"  # prompt lookup, or the name of the draft model

    def to_dict(self) -> dict:
        rate = round(self.accepted / self.drafted, 4) if self.drafted else None
        return {**dataclasses.asdict(self), "acceptance_rate": rate}


class NgramIndex:
    """A token sequence that knows where each of its n-grams (n <= max_n) last occurred."""

    def __init__(self, tokens: Sequence[int] = (), max_n: int = MAX_NGRAM, min_n: int = MIN_NGRAM):
        self.tokens: list[int] = []
        self.max_n, self.min_n = max_n, min_n
        self._next: dict[tuple[int, ...], int] = {}  # n-gram -> index of the token after its latest occurrence
        for token in tokens:
            self.append(token)

    def append(self, token: int) -> None:
        end = len(self.tokens)
        for n in range(self.min_n, min(self.max_n, end) + 1):  # the n-grams ending here are followed by `token`
            self._next[tuple(self.tokens[end - n:])] = end
        self.tokens.append(token)

    def draft(self, k: int, tail: Sequence[int] | None = None) -> list[int]:
        """Up to k tokens that followed the latest earlier occurrence of the last n-gram of `tail` (by
        default the sequence's own end), the longest n first; none when not even its last `min_n`
        tokens occurred before."""
        tail = self.tokens[-self.max_n:] if tail is None else list(tail[-self.max_n:])
        if k <= 0:
            return []
        for n in range(min(self.max_n, len(tail)), self.min_n - 1, -1):
            follow = self._next.get(tuple(tail[-n:]))
            if follow is not None:
                return self.tokens[follow:follow + k]
        return []


def check_draft_token(scores: torch.Tensor, draft: int, do_sample: bool,
                      generator: torch.Generator | None, q: torch.Tensor | None = None) -> tuple[int, bool]:
    """(token, kept): the draft token if the model keeps it, else the model's own token instead.

    `scores` (V,) are the processed logits at the draft's position, p their softmax. Greedy keeps the
    argmax. Sampling keeps `draft` with probability min(1, p(draft) / q(draft)), else draws from
    max(0, p − q) renormalised, where q (V,) is the distribution the draft was drawn from: a draft
    model's, or, for a copied draft (q None), all its mass on `draft` (kept with p(draft), else drawn
    from p without it). Either way the token is distributed as p.
    """
    if not do_sample:
        best = int(scores.argmax())
        return best, best == draft
    probs = scores.softmax(dim=-1)
    q_draft = 1.0 if q is None else float(q[draft])
    if float(torch.rand((), generator=generator, device=probs.device)) * q_draft < float(probs[draft]):
        return draft, True
    if q is None:
        probs[draft] = 0.0
    else:
        residual = (probs - q.to(probs.device)).clamp_(min=0)
        probs = residual if float(residual.sum()) > 0 else probs  # p = q up to rounding: rejection was a fluke
    return int(sampling.draw(probs[None], generator)[0]), False


class PromptLookup:
    """Drafts copied from the prompt, the prediction and the answer so far (`NgramIndex`), looked up by
    the end of the real sequence (prompt, then answer), so the answer's first tokens can match the
    prediction's."""

    def __init__(self, prompt: Sequence[int], prediction: Sequence[int] = ()):
        self.index = NgramIndex([*prompt, *prediction])
        self.tail = list(prompt[-MAX_NGRAM:])

    def accept(self, token: int) -> None:
        self.index.append(token)
        self.tail = [*self.tail[1 - MAX_NGRAM:], token]

    def draft(self, k: int) -> tuple[list[int], torch.Tensor | None]:
        return self.index.draft(k, self.tail), None


class Drafter(Protocol):
    """What proposes drafts: told each token of the text as it is settled, asked for up to k more.
    `draft` returns the tokens and, for drafts drawn at random, the (k, V) distributions they came from."""

    def accept(self, token: int) -> None: ...

    def draft(self, k: int) -> tuple[list[int], torch.Tensor | None]: ...


@torch.inference_mode()
def speculative_steps(
    model: Transformer,
    prompt: Sequence[int],
    config: GenerationConfig,
    eos_ids: Sequence[int],
    generator: torch.Generator | None = None,
    one_token_forward: Callable[..., torch.Tensor] | None = None,
    stats: SpeculationStats | None = None,
    prediction: Sequence[int] = (),
    draft_model: DraftModel | None = None,
) -> Iterator[int]:
    """Yield the new tokens of one prompt, drafting up to `config.lookup` tokens at a time by prompt
    lookup or, with `draft_model` (and no lookup asked for), up to `draft_model.tokens` by that model.

    `prediction`: tokens the answer is expected to resemble (OpenAI's predicted outputs, e.g. the file
    being edited); drafts are looked up in the prompt followed by them. `one_token_forward` (a compiled
    step) runs every step after the prompt's, drafts too (their forward then costs 1.9x a one-token
    step instead of the eager 3.4x, for 9 tokens with w8a8).
    """
    stats = stats if stats is not None else SpeculationStats()
    device = model.tok_embeddings.weight.device
    prompt_len = len(prompt)
    tokens = torch.zeros((1, prompt_len + config.max_new_tokens), dtype=torch.long, device=device)
    tokens[0, :prompt_len] = torch.tensor(list(prompt), dtype=torch.long)
    caches = model.new_caches(1, tokens.shape[1])
    processors = config.processors(eos_ids, prompt_len)
    eos = set() if config.ignore_eos else set(eos_ids)
    drafter: Drafter
    if draft_model is not None and not config.lookup:
        k = draft_model.tokens
        drafter = draft_model.drafter(prompt, tokens.shape[1], processors, config.sampling, generator, eos)
        stats.drafter = draft_model.name
    else:
        k = config.lookup
        drafter = PromptLookup(prompt, prediction)
    step_forward = model if one_token_forward is None else one_token_forward

    logits = model(tokens[:, :prompt_len], caches, 0, last_only=True)
    scores = sampling.apply_processors(processors, tokens[:, :prompt_len], logits[:, -1].float())
    new = [int(sampling.pick_next(scores, config.sampling, generator)[0])]
    n = prompt_len  # tokens in the sequence; the newest one, not yet read by the model, comes from `new`
    budget = k  # the next draft's most tokens: see the module notes
    while True:
        for token in new:
            tokens[0, n] = token
            n += 1
            drafter.accept(token)
            yield token
            if token in eos or n - prompt_len == config.max_new_tokens:
                return
        draft, q = drafter.draft(min(budget, config.max_new_tokens - (n - prompt_len) - 1))  # room for one more
        stats.forwards += 1
        stats.drafted += len(draft)
        # Tokens as `[None]` of a row slice: strides (T, 1), a fresh tensor's, which a compiled step guards on.
        if not draft:
            logits = step_forward(tokens[0, n - 1:n][None], caches, n - 1, None, None)
        else:  # the newest token and the draft in one causal forward from position n - 1
            end = n + len(draft)
            tokens[0, n:end] = torch.tensor(draft, dtype=torch.long)
            causal = padding_mask(torch.ones((1, end), dtype=torch.bool, device=device), n - 1, end)
            logits = step_forward(tokens[0, n - 1:end][None], caches, n - 1, None, causal)
        new = []
        for j in range(len(draft) + 1):
            scores = sampling.apply_processors(processors, tokens[:, :n + j], logits[:, j].float())
            if j == len(draft):
                new.append(int(sampling.pick_next(scores, config.sampling, generator)[0]))
                break
            token, kept = check_draft_token(scores[0], draft[j], config.sampling, generator,
                                            None if q is None else q[j])
            new.append(token)
            if not kept:
                break
            stats.accepted += 1
        if draft:
            kept_now = len(new) - 1
            budget = min(k, 2 * budget) if kept_now == len(draft) else kept_now + 1
