"""Keys: parse names such as "D minor" or "Bb", and estimate a piece's key (Krumhansl–Schmuckler).

    parse_key("f# minor") → Key(tonic=6, minor=True);  str(Key(6, True)) → "F# minor"
    estimate_key(piece)   → the major or minor key whose Krumhansl–Kessler profile correlates best
                            with the piece's duration-weighted pitch-class histogram
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from luoxia.core.errors import InvalidParameterError
from luoxia.music.score import Piece

NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclasses.dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    minor: bool = False

    def __str__(self) -> str:
        return f"{NAMES[self.tonic]} {'minor' if self.minor else 'major'}"

    @property
    def token(self) -> str:
        return f"Key_{NAMES[self.tonic]}_{'minor' if self.minor else 'major'}"


ALL_KEYS = tuple(Key(t, m) for m in (False, True) for t in range(12))


def parse_key(name: str) -> Key:
    """"C", "c minor", "F# major", "Bb minor", "Ebm" → Key; anything else is a one-line error."""
    m = re.fullmatch(r"\s*([A-Ga-g])\s*([#♯b♭]?)\s*(major|minor|maj|min|m|M)?\s*", name)
    if not m:
        raise InvalidParameterError(f"unknown key {name!r}; write a tonic and a mode, e.g. 'D minor' or 'Bb major'")
    letter, accidental, mode = m.groups()
    tonic = (_LETTERS[letter.upper()] + {"#": 1, "♯": 1, "b": -1, "♭": -1}.get(accidental, 0)) % 12
    return Key(tonic, minor=mode in ("minor", "min", "m"))


def pitch_class_histogram(piece: Piece) -> np.ndarray:
    """(12,) total duration of each pitch class."""
    hist = np.zeros(12)
    for n in piece.notes:
        hist[n.pitch % 12] += n.duration
    return hist


def estimate_key(piece: Piece) -> Key:
    hist = pitch_class_histogram(piece)
    if not hist.any():
        raise InvalidParameterError("cannot estimate the key of a piece without notes")
    best, best_r = ALL_KEYS[0], -np.inf
    for key in ALL_KEYS:
        profile = np.roll(MINOR_PROFILE if key.minor else MAJOR_PROFILE, key.tonic)
        r = np.corrcoef(hist, profile)[0, 1] if hist.std() > 0 else 0.0
        if r > best_r:
            best, best_r = key, r
    return best


def shift_to(key: Key, target: Key) -> int:
    """Semitones (-5..6) that move `key`'s tonic to `target`'s."""
    return (target.tonic - key.tonic + 5) % 12 - 5
