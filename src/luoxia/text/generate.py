"""The generation loop: prefill the prompt(s), then decode one token at a time from the KV cache.

`decode_steps` is a generator that yields each step's new tokens (B,), so callers can stream,
detokenise, watch for stop strings and stop whenever they like. Batches are left-padded; a
boolean mask hides the padding and positions count only real tokens, as transformers does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from luoxia.text import sampling
from luoxia.text.generation_config import GenerationConfig
from luoxia.text.model import Transformer


def left_pad(prompts: Sequence[Sequence[int]], total_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token matrix (B, total_len) with prompts right-aligned at the prompt length, and a mask of real tokens."""
    longest = max(len(p) for p in prompts)
    tokens = torch.full((len(prompts), total_len), pad_id, dtype=torch.long)
    real = torch.zeros((len(prompts), total_len), dtype=torch.bool)
    for i, p in enumerate(prompts):
        tokens[i, longest - len(p):longest] = torch.tensor(p, dtype=torch.long)
        real[i, longest - len(p):longest] = True
    return tokens, real


def padding_mask(real: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """Attention mask (B, 1, T, S) for queries [start, end) over keys [0, end): causal, no padding keys.

    A padding query may see itself, so no row is empty (an empty row would give NaNs).
    """
    q = torch.arange(start, end, device=real.device)[:, None]
    k = torch.arange(end, device=real.device)[None, :]
    causal = k <= q  # (T, S)
    return ((causal & real[:, None, :end]) | (k == q))[:, None]


def prefill_positions_and_mask(real: torch.Tensor, longest: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Positions (B, longest) and attention mask for prefilling left-padded prompts whose real tokens `real`
    marks: each row's positions count its own tokens, from its first real one. (None, None) when no row is
    padded: default positions, plain causal attention."""
    if bool(real[:, :longest].all()):
        return None, None
    return (real[:, :longest].cumsum(-1) - 1).clamp(min=0), padding_mask(real, 0, longest)


@torch.inference_mode()
def decode_steps(
    model: Transformer,
    prompts: Sequence[Sequence[int]],
    config: GenerationConfig,
    eos_ids: Sequence[int],
    pad_id: int,
    generator: torch.Generator | None = None,
    one_token_forward: Callable[..., torch.Tensor] | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row (B,) for up to `max_new_tokens` steps (greedy or sampled).

    `one_token_forward` runs the one-token steps instead of `model` (a compiled copy: `text.compiled`;
    a CUDA-graphed one, which also provides the caches: `text.cuda_graph`).

    Rows that have produced an EOS token get `pad_id` from then on; the loop ends when all rows
    have finished. Closing the generator stops generation at once.
    """
    B, longest = len(prompts), max(len(p) for p in prompts)
    total = longest + config.max_new_tokens
    device = model.tok_embeddings.weight.device
    tokens, real = left_pad(prompts, total, pad_id)
    tokens, real = tokens.to(device), real.to(device)
    step_forward = model if one_token_forward is None else one_token_forward
    # A CUDA-graphed step (text.cuda_graph) owns its caches: ask it for them, and give them back at the end.
    caches = getattr(step_forward, "new_caches", model.new_caches)(B, total)
    processors = config.processors(eos_ids, longest)
    eos = torch.tensor([] if config.ignore_eos else list(eos_ids), dtype=torch.long, device=device)
    finished = torch.zeros(B, dtype=torch.bool, device=device)

    positions, mask = prefill_positions_and_mask(real, longest)
    padded = mask is not None
    try:
        logits = model(tokens[:, :longest], caches, 0, positions, mask, last_only=True)
        for step in range(config.max_new_tokens):
            cur = longest + step
            scores = sampling.apply_processors(processors, tokens[:, :cur], logits[:, -1].float())
            next_tokens = sampling.pick_next(scores, config.sampling, generator)
            next_tokens = torch.where(finished, pad_id, next_tokens)
            tokens[:, cur] = next_tokens
            real[:, cur] = ~finished
            yield next_tokens
            finished |= torch.isin(next_tokens, eos)
            if step + 1 == config.max_new_tokens or bool(finished.all()):
                return
            pos = real[:, :cur + 1].sum(-1, keepdim=True) - 1 if padded else None
            mask = padding_mask(real, cur, cur + 1) if padded else None
            logits = step_forward(next_tokens[:, None], caches, cur, pos, mask)
    finally:
        if hasattr(step_forward, "release"):
            step_forward.release(caches)
