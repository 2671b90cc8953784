"""REMI-style music tokens (Huang & Yang 2020), with a voice token per note for four-part writing.

    <bos> Key_F_major TS_4/4 Bar Key_F_major Pos_0 Vel_80 Voice_0 Pitch_72 Dur_4 Voice_1 Pitch_65 Dur_4 ...
          Pos_4 Voice_0 Pitch_74 Dur_2 ... Bar Key_F_major ... <eos>

A piece opens with its key and metre; then each bar is `Bar` and the key again (so that every
training window, which rarely starts at a piece's start, sees the key it is conditioned on), and
each onset time within the bar `Pos_<16th>` followed by its notes as (Voice, Pitch, Dur) from
soprano to bass. A `Vel_` token appears only where the velocity changes. The vocabulary and this
layout are fixed by this module (VOCAB_VERSION); `backend_tokenizer` writes the vocabulary as a
word-level `tokenizers` file so the shared shards, training loop and Hugging Face export take music
tokens as they take text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from luoxia.core.errors import CorruptFileError, InvalidParameterError
from luoxia.music.keys import ALL_KEYS, NAMES, Key
from luoxia.music.score import N_VOICES, Note, Piece

VOCAB_VERSION = 2  # 2: the key after every Bar
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
TIME_SIGNATURES = ((2, 4), (3, 4), (4, 4), (5, 4), (6, 4), (2, 2), (3, 2), (4, 2), (3, 8), (6, 8), (9, 8), (12, 8))
MAX_BAR_TICKS = 32
PITCHES = range(21, 109)  # the piano's 88 keys
DURATIONS = (*range(1, 17), 20, 24, 28, 32, 40, 48, 64)
VELOCITIES = tuple(range(16, 128, 16))  # 8 levels: 16, 32, .., 112


def _vocabulary() -> list[str]:
    return [*SPECIALS, *(k.token for k in ALL_KEYS), *(f"TS_{n}/{d}" for n, d in TIME_SIGNATURES),
            *(f"Vel_{v}" for v in VELOCITIES), "Bar", *(f"Pos_{p}" for p in range(MAX_BAR_TICKS)),
            *(f"Voice_{v}" for v in range(N_VOICES)), *(f"Pitch_{p}" for p in PITCHES),
            *(f"Dur_{d}" for d in DURATIONS)]


VOCAB: list[str] = _vocabulary()
ID: dict[str, int] = {t: i for i, t in enumerate(VOCAB)}
PAD, BOS, EOS = ID["<pad>"], ID["<bos>"], ID["<eos>"]
BAR = ID["Bar"]


def kind(token_id: int) -> str:
    """The token's family: "Key", "TS", "Vel", "Bar", "Pos", "Voice", "Pitch", "Dur" or a special."""
    return VOCAB[token_id].split("_", 1)[0]


def value(token_id: int) -> str:
    return VOCAB[token_id].split("_", 1)[1]


def ids_of(prefix: str) -> list[int]:
    """Every id of one family, e.g. ids_of("Pos") → the ids of Pos_0..Pos_31."""
    return [i for i, t in enumerate(VOCAB) if t.split("_", 1)[0] == prefix]


def _nearest(x: int, options: Sequence[int]) -> int:
    return min(options, key=lambda o: (abs(o - x), o))


@dataclasses.dataclass
class Header:
    key: Key
    time_signature: tuple[int, int] = (4, 4)


def encode(piece: Piece, key: Key, eos: bool = True) -> list[int]:
    """Token ids of `piece` in `key` (pitches outside the piano range and far-out durations are clamped)."""
    if piece.time_signature not in TIME_SIGNATURES:
        known = ", ".join(f"{n}/{d}" for n, d in TIME_SIGNATURES)
        raise InvalidParameterError(f"time signature {piece.time_signature[0]}/{piece.time_signature[1]} is not "
                                    f"in the vocabulary; use one of {known}")
    bar = piece.bar_ticks
    ids = [BOS, ID[key.token], ID[f"TS_{piece.time_signature[0]}/{piece.time_signature[1]}"]]
    velocity = None
    by_bar: dict[int, list[Note]] = {}
    for n in piece.notes:
        by_bar.setdefault(n.start // bar, []).append(n)
    for b in range(piece.n_bars):
        ids += [BAR, ID[key.token]]
        position = None
        for n in sorted(by_bar.get(b, []), key=lambda n: (n.start, n.voice, -n.pitch)):
            if n.start % bar != position:
                position = n.start % bar
                ids.append(ID[f"Pos_{position}"])
            vel = _nearest(n.velocity, VELOCITIES)
            if vel != velocity:
                velocity = vel
                ids.append(ID[f"Vel_{vel}"])
            ids += [ID[f"Voice_{n.voice}"], ID[f"Pitch_{min(max(n.pitch, PITCHES[0]), PITCHES[-1])}"],
                    ID[f"Dur_{_nearest(n.duration, DURATIONS)}"]]
    if eos:
        ids.append(EOS)
    return ids


def decode(ids: Sequence[int], tempo: float = 90.0) -> tuple[Piece, Header | None]:
    """Token ids → Piece and its header. Tolerant: tokens out of grammar are skipped, as a sampler's
    slips should not lose the rest of a piece; decoding stops at <eos>."""
    key, time_sig, bar_ticks = None, (4, 4), 16
    bar_index, position, velocity, voice, pitch = -1, 0, 80, None, None
    notes = []
    for i in ids:
        if not 0 <= i < len(VOCAB):
            raise CorruptFileError(f"token id {i} is outside the music vocabulary of {len(VOCAB)}")
        k = kind(i)
        if i == EOS:
            break
        if k == "Key":
            tonic, mode = value(i).split("_")
            key = Key(NAMES.index(tonic), mode == "minor")
        elif k == "TS" and bar_index < 0:
            n, d = value(i).split("/")
            time_sig = (int(n), int(d))
            bar_ticks = Piece([], time_sig).bar_ticks
        elif k == "Bar":
            bar_index, position = bar_index + 1, 0
        elif k == "Pos":
            position = int(value(i))
        elif k == "Vel":
            velocity = int(value(i))
        elif k == "Voice":
            voice, pitch = int(value(i)), None
        elif k == "Pitch" and voice is not None:
            pitch = int(value(i))
        elif k == "Dur" and voice is not None and pitch is not None:
            notes.append(Note(max(bar_index, 0) * bar_ticks + position, voice, pitch, int(value(i)), velocity))
            voice = pitch = None
    piece = Piece(notes, time_signature=time_sig, tempo=tempo)
    return piece, Header(key, time_sig) if key is not None else None


def to_text(ids: Sequence[int]) -> str:
    """Space-separated token names, the form the word-level tokenizer reads."""
    return " ".join(VOCAB[i] for i in ids)


def backend_tokenizer():
    """The vocabulary as a `luoxia.text.tokenizer.Tokenizer` (word level, split on spaces)."""
    from tokenizers import Tokenizer as BackendTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    from luoxia.text.tokenizer import Tokenizer

    backend = BackendTokenizer(WordLevel(vocab=dict(ID), unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    return Tokenizer(backend, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def check_vocabulary(tokenizer) -> None:
    """A model's tokenizer must be this vocabulary, id for id, else its tokens mean something else."""
    vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
    if len(vocab) != len(VOCAB) or any(vocab.get(t) != i for i, t in enumerate(VOCAB)):
        raise CorruptFileError(f"the model's tokenizer is not the music vocabulary v{VOCAB_VERSION} "
                               f"({len(VOCAB)} tokens); give a model trained with `luoxia train music`")
