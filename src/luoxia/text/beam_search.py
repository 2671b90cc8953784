"""Beam search for one prompt, with transformers' scoring and stopping rules.

At each step every live beam proposes its continuations; the best 2·num_beams (more with several
EOS ids) by summed log-probability are kept. Those among the first num_beams ranks that end (EOS,
or the length limit) become finished hypotheses scored sum_logprobs / new_tokens**length_penalty;
the best num_beams that do not end live on. Search stops when no live beam can beat the worst of
num_beams finished hypotheses (`early_stopping=False`: judged at the current length; "never": at
the longest possible length when length_penalty > 0), as soon as num_beams hypotheses are finished
(`early_stopping=True`), or when every candidate ended.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from luoxia.text import sampling
from luoxia.text.generation_config import GenerationConfig
from luoxia.text.model import Transformer

_DEAD = -1.0e9  # transformers' stand-in for -inf in beam scores


@torch.inference_mode()
def beam_search(
    model: Transformer, prompt: Sequence[int], config: GenerationConfig, eos_ids: Sequence[int]
) -> tuple[list[int], float]:
    """The best finished sequence (new tokens only) and its length-penalised score."""
    n, prompt_len = config.num_beams, len(prompt)
    max_len = prompt_len + config.max_new_tokens
    eos = set() if config.ignore_eos else set(eos_ids)
    processors = config.processors(list(eos), prompt_len)
    device = model.tok_embeddings.weight.device

    caches = model.new_caches(1, max_len)
    prompt_tokens = torch.tensor([list(prompt)], dtype=torch.long, device=device)
    logits = model(prompt_tokens, caches, 0, last_only=True).expand(n, -1, -1)  # prefill once: (n, 1, V)
    for cache in caches:
        cache.repeat_batch(n)
    beams = prompt_tokens.expand(n, -1).clone()  # (n, cur)
    beam_scores = torch.full((n,), _DEAD, device=device)
    beam_scores[0] = 0.0  # all beams start identical: let only the first propose
    finished: list[tuple[float, list[int]]] = []  # best first, at most n
    can_improve = True
    n_keep = max(2, 1 + len(eos)) * n

    for cur in range(prompt_len, max_len):
        log_probs = torch.log_softmax(logits[:, -1].float(), dim=-1)
        log_probs = sampling.apply_processors(processors, beams, log_probs)
        vocab = log_probs.shape[-1]
        top_scores, top_ids = torch.topk((log_probs + beam_scores[:, None]).view(-1), n_keep)
        sources, tokens = (top_ids // vocab).tolist(), (top_ids % vocab).tolist()
        new_len = cur + 1 - prompt_len
        ends = [t in eos or cur + 1 == max_len for t in tokens]

        # Finished hypotheses: only candidates ranked within the first n may enter.
        full = len(finished) == n
        accepting = can_improve and not (full and config.early_stopping is True)
        penalised = (top_scores / (new_len ** config.length_penalty)).tolist()
        if accepting:
            for rank in range(n):
                if ends[rank]:
                    seq = beams[sources[rank], prompt_len:].tolist() + [tokens[rank]]
                    finished.append((penalised[rank], seq))
            finished = sorted(finished, key=lambda h: -h[0])[:n]

        # Live beams: the best n candidates that did not end.
        live_scores = top_scores + torch.tensor(ends, dtype=torch.float32, device=device) * _DEAD
        order = torch.topk(live_scores, n).indices.tolist()
        rows = torch.tensor([sources[i] for i in order], device=device)
        beam_scores = live_scores[order]
        beams = torch.cat((beams[rows], torch.tensor([tokens[i] for i in order], device=device)[:, None]), dim=1)

        if all(ends) or (len(finished) == n and config.early_stopping is True):
            break
        if len(finished) == n:  # can a live beam still beat the worst finished hypothesis?
            best_len = new_len
            if config.early_stopping == "never" and config.length_penalty > 0:
                best_len = max_len - prompt_len
            can_improve = bool(beam_scores[0] / (best_len ** config.length_penalty) > finished[-1][0])
            if not can_improve:
                break
        for cache in caches:
            cache.reorder(rows)
        logits = model(beams[:, -1:], caches, cur)

    best_score, best = finished[0]
    return best, best_score
