"""Relevance: cosine similarity between the embeddings of a prompt and of its output (all-MiniLM-L6-v2).

About 0.1 or less for unrelated texts, 0.5 and more for a text on the prompt's topic. The embeddings
are unit vectors (see `embeddings`), so the cosine is their dot product.
"""

from __future__ import annotations

from collections.abc import Sequence

from luoxia.eval.embeddings import SentenceEncoder


def relevance(encoder: SentenceEncoder, prompts: Sequence[str], outputs: Sequence[str]) -> list[float]:
    """cos(embed(prompt_i), embed(output_i)) for each pair."""
    if len(prompts) != len(outputs):
        raise ValueError(f"{len(prompts)} prompts for {len(outputs)} outputs")
    if not prompts:
        return []
    e = encoder.encode([*prompts, *outputs])
    p, o = e[:len(prompts)], e[len(prompts):]
    return (p * o).sum(-1).tolist()
