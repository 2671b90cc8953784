"""Evaluation of generated content: is it fluent, diverse, relevant, coherent, well-formed.

One concept per file: `textsplit` (words, Chinese characters, sentences, n-grams), `diversity`
(distinct-n, self-BLEU, Zipf, repetition, novelty), `fluency` (perplexity under a reference model),
`embeddings` (all-MiniLM-L6-v2, offline), `relevance`, `coherence`, `checks` (format constraints),
`mauve` (distribution match), `text` (all of them over a JSONL of generations), `decoding` (the
Holtzman et al. 2020 decoding study) and `report` (JSON, Markdown, HTML and PNG plots).
"""
