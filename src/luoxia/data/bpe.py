"""Tokenizer training: a byte-level BPE (Sennrich et al. 2016, GPT-2's byte variant) with the
`tokenizers` library, or a character vocabulary for small corpora.

Both are byte-level: any text encodes, nothing is ever <unk>, and the result is a plain
`tokenizer.json` that our loaders, transformers and the GGUF exporter all read.

    bpe    merges learned by frequency, within GPT-2's pre-tokenizer words (a run of Chinese
           characters is one word, so frequent character pairs become tokens)
    char   every character seen at least `min_frequency` times becomes one token (most frequent
           first, up to vocab_size); rarer ones fall back to their UTF-8 bytes. Built as BPE merges
           that only join the bytes of one character, so no merge can cross a character boundary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from luoxia.core.errors import InvalidParameterError
from luoxia.text.tokenizer import Tokenizer, bytes_to_unicode

EOS = "<|endoftext|>"
SPECIALS = (EOS,)
KINDS = ("bpe", "char")


def _wrap(backend) -> Tokenizer:
    from tokenizers import AddedToken, decoders, pre_tokenizers, processors

    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIALS])
    return Tokenizer(backend, eos_token=EOS, pad_token=EOS)


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> Tokenizer:
    from tokenizers import Tokenizer as BackendTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    floor = 256 + len(SPECIALS)
    if vocab_size < floor:
        raise InvalidParameterError(f"vocab_size {vocab_size} is below the {floor} a byte-level tokenizer needs; "
                                    f"use --vocab-size {floor} or more")
    backend = BackendTokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    got = backend.get_vocab_size()
    if got < vocab_size:
        raise InvalidParameterError(
            f"the corpus supports only {got} BPE tokens (pairs seen at least {min_frequency} times), "
            f"not vocab_size {vocab_size}; use --vocab-size {got} or less, or add data"
        )
    return _wrap(backend)


def train_char(texts: Iterable[str], vocab_size: int = 0, min_frequency: int = 1) -> Tokenizer:
    """Characters as tokens; vocab_size 0 takes every character seen at least min_frequency times."""
    from tokenizers import Tokenizer as BackendTokenizer
    from tokenizers import models

    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    spell = bytes_to_unicode()
    vocab: dict[str, int] = {t: i for i, t in enumerate(SPECIALS)}
    for b in range(256):
        vocab[spell[b]] = len(vocab)
    merges: list[tuple[str, str]] = []
    chars = sorted((c for c, n in counts.items() if n >= min_frequency), key=lambda c: (-counts[c], c))
    limit = vocab_size or float("inf")
    for c in chars:
        pieces = [spell[b] for b in c.encode()]
        new = [("".join(pieces[:k]), pieces[k]) for k in range(1, len(pieces)) if "".join(pieces[:k + 1]) not in vocab]
        if len(vocab) + len(new) > limit:
            continue  # a rarer character with shorter byte spelling may still fit
        for left, right in new:
            vocab[left + right] = len(vocab)
            merges.append((left, right))
    if vocab_size and len(vocab) < vocab_size:
        raise InvalidParameterError(
            f"the corpus supports only {len(vocab)} character tokens ({len(chars)} distinct characters), "
            f"not vocab_size {vocab_size}; use --vocab-size {len(vocab)} (or 0 for all), or add data"
        )
    return _wrap(BackendTokenizer(models.BPE(vocab=vocab, merges=merges)))


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 8000,
                    min_frequency: int = 0) -> Tokenizer:
    if kind == "bpe":
        return train_bpe(texts, vocab_size, min_frequency or 2)
    if kind == "char":
        return train_char(texts, vocab_size, min_frequency or 1)
    raise InvalidParameterError(f"unknown tokenizer kind {kind!r}; choose bpe, char, or a tokenizer.json path")
