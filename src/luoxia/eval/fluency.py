"""Fluency: perplexity of texts under a reference language model (any model `TextModel.load` takes).

Perplexity of target tokens x_1..x_N given a context c (a prompt, or nothing):

    PPL = exp( -1/N · Σ_i log p(x_i | c, x_<i) )

Over a set we pool tokens (total negative log-likelihood / total tokens), as Holtzman et al. do.
A text without context has its first token unscored (nothing to predict it from), as in
transformers' perplexity recipe (labels = input ids). Contexts longer than the window lose their oldest
tokens. For the float32 model (`quant="none"`) the numbers equal transformers' on the same weights.

`sentence_perplexities` scores each sentence given the prompt and the sentences before it: a
sentence that does not follow from what came before stands out with a high value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from luoxia.eval.textsplit import split_sentences

if TYPE_CHECKING:
    from luoxia.text.pipeline import TextModel

TOKENS_PER_BATCH = 2048  # bounds the (B, T, vocab) logits: 2048 × 49152 float32 is 400 MB


@dataclasses.dataclass
class Perplexity:
    overall: float  # exp(total NLL / total tokens)
    per_text: list[float]  # exp(mean NLL) of each text (nan for a text with no scored token)
    tokens: int  # tokens scored


def token_nlls(model: TextModel, contexts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]
               ) -> list[torch.Tensor]:
    """Negative log-likelihood (nats) of each target token given its context and the targets before it."""
    window = model.context_length
    rows = []  # (input ids, index of the first scored position, number of scored tokens)
    for ctx, tgt in zip(contexts, targets):
        ctx, tgt = list(ctx), list(tgt)
        if not ctx:
            ctx, tgt = tgt[:1], tgt[1:]
        ids = (ctx + tgt)[-(window):]
        n = min(len(tgt), len(ids) - 1)
        rows.append((ids, len(ids) - n, n))
    out: list[torch.Tensor | None] = [None] * len(rows)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    device = model.model.tok_embeddings.weight.device
    i = 0
    while i < len(order):
        longest, j = len(rows[order[i]][0]), i + 1
        while j < len(order) and len(rows[order[j]][0]) * (j + 1 - i) <= max(TOKENS_PER_BATCH, longest):
            longest, j = len(rows[order[j]][0]), j + 1
        batch = [rows[k] for k in order[i:j]]
        # Right padding needs no mask: causal attention never lets a real token see the padding after it.
        tokens = torch.zeros(len(batch), longest, dtype=torch.long)
        for b, (ids, _, _) in enumerate(batch):
            tokens[b, :len(ids)] = torch.tensor(ids)
        with torch.inference_mode():
            logits = model.model(tokens.to(device)).float()  # (B, T, vocab)
        for b, (k, (_, first, n)) in enumerate(zip(order[i:j], batch)):
            pred = logits[b, first - 1:first - 1 + n]  # position t predicts token t+1
            out[k] = F.cross_entropy(pred, tokens[b, first:first + n].to(device), reduction="none").cpu()
        i = j
    return out


def perplexity(model: TextModel, texts: Sequence[str], prompts: Sequence[str] | None = None) -> Perplexity:
    """Perplexity of each text (given its prompt, if any) and of the whole set."""
    tok = model.tokenizer
    contexts = [tok.encode(p, add_special_tokens=True) if p else [] for p in (prompts or [""] * len(texts))]
    targets = [tok.encode(t, add_special_tokens=False) for t in texts]
    return perplexity_of_ids(model, contexts, targets)


def perplexity_of_ids(model: TextModel, contexts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]
                      ) -> Perplexity:
    nlls = token_nlls(model, contexts, targets)
    total, count = sum(float(x.sum()) for x in nlls), sum(len(x) for x in nlls)
    per_text = [math.exp(float(x.mean())) if len(x) else math.nan for x in nlls]
    return Perplexity(math.exp(total / count) if count else math.nan, per_text, count)


def sentence_perplexities(model: TextModel, text: str, prompt: str = "") -> list[tuple[str, float]]:
    """Each sentence of `text` with its perplexity given the prompt and the sentences before it."""
    tok = model.tokenizer
    pieces, sentences, end = [], [], 0
    for s in split_sentences(text):
        start = text.index(s, end)
        pieces.append(text[end:start + len(s)])  # the sentence with the space before it
        sentences.append(s)
        end = start + len(s)
    if not pieces:
        return []
    piece_ids = [tok.encode(p, add_special_tokens=False) for p in pieces]
    context = tok.encode(prompt, add_special_tokens=True) if prompt else []
    nll = token_nlls(model, [context], [[t for ids in piece_ids for t in ids]])[0]
    skipped = sum(len(ids) for ids in piece_ids) - len(nll)  # tokens lost to the window, or the unscored first one
    result, at = [], -skipped
    for s, ids in zip(sentences, piece_ids):
        part = nll[max(at, 0):max(at + len(ids), 0)]
        result.append((s, math.exp(float(part.mean())) if len(part) else math.nan))
        at += len(ids)
    return result
