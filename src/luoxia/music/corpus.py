"""The music corpus: Bach's chorales from music21 (offline), or a folder of MIDI / MusicXML files,
read as Pieces and written as token shards for the shared training loop.

    pieces = list(read_corpus("bach"))                    # [(name, Piece), ...] sorted by name
    prepare(CorpusConfig(source="bach"), "runs/chorale-data")
        → train_000.bin, val_000.bin, manifest.json, tokenizer.json (the music vocabulary)

The split is by piece (every `val_every`-th by name is held out whole, in its written key); training
pieces are repeated in every transposition of `transpose` that keeps them on the piano.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, InvalidParameterError, LuoxiaError, UserFileError
from luoxia.music import tokens
from luoxia.music.keys import Key, estimate_key
from luoxia.music.score import TICKS_PER_QUARTER, Note, Piece, read_midi

MIDI_SUFFIXES = (".mid", ".midi")
XML_SUFFIXES = (".xml", ".mxl", ".musicxml")
VOICE_WORDS = ("soprano", "alto", "tenor", "bass")


@dataclasses.dataclass
class CorpusConfig:
    """The `[corpus]` table of a `luoxia train music` config."""

    source: str = "bach"  # "bach" (music21's chorales) or a folder of .mid/.midi/.xml/.mxl/.musicxml files
    transpose: list[int] = dataclasses.field(default_factory=lambda: [-5, 6])  # inclusive semitone range
    val_every: int = 10  # every n-th piece by name is held out
    limit: int = 0  # read only the first n pieces (0: all), for quick trials

    def validate(self) -> None:
        if len(self.transpose) != 2 or self.transpose[0] > 0 or self.transpose[1] < 0:
            raise InvalidParameterError(f"transpose must be [low, high] with low <= 0 <= high, got {self.transpose}")
        if self.val_every < 2:
            raise InvalidParameterError(f"val_every must be at least 2, got {self.val_every}")


def read_score(path: str | Path) -> Piece:
    """A MIDI or MusicXML file as a Piece (MusicXML through music21)."""
    path = Path(path)
    if not path.is_file():
        raise UserFileError(f"no such file: {path}")
    if path.suffix.lower() in XML_SUFFIXES:
        return _from_music21(path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"MThd":
        raise CorruptFileError(f"{path} is not a MIDI or MusicXML file; give a .mid, .xml or .mxl file")
    return read_midi(path)


def _from_music21(path: Path) -> Piece:
    import music21

    try:
        score = music21.converter.parse(str(path), forceSource=True)
    except Exception as e:  # music21 raises many types for a bad file
        raise CorruptFileError(f"{path} is not readable MusicXML ({type(e).__name__}); give a valid score") from None
    piece = from_music21(score)
    if piece is None or not piece.notes:
        raise InvalidParameterError(f"{path} has no pitched notes; give a score with notes")
    return piece


def from_music21(score) -> Piece | None:
    """A music21 Score → Piece: the four parts named soprano..bass, else the first four parts
    (highest first). None when the metre is not in the vocabulary."""
    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    named = {}
    for p in parts:
        name = (p.partName or "").lower()
        for v, word in enumerate(VOICE_WORDS):
            if word in name and v not in named:
                named[v] = p
    chosen = [named[v] for v in range(4)] if len(named) == 4 else parts[:4]
    sigs = chosen[0].recurse().getElementsByClass("TimeSignature")
    ts = (sigs[0].numerator, sigs[0].denominator) if sigs else (4, 4)
    if ts not in tokens.TIME_SIGNATURES:
        return None
    bar = Piece([], ts).bar_ticks
    measures = chosen[0].getElementsByClass("Measure")
    pickup = 0
    if measures:
        first = round(measures[0].duration.quarterLength * TICKS_PER_QUARTER)
        pickup = (bar - first) % bar if 0 < first < bar else 0
    groups = []
    for part in chosen:
        notes = []
        for el in part.stripTies().flatten().notes:
            dur = round(el.duration.quarterLength * TICKS_PER_QUARTER)
            if dur <= 0:  # grace notes
                continue
            start = round(float(el.offset) * TICKS_PER_QUARTER) + pickup
            notes += [(start, p.midi, dur) for p in el.pitches]
        groups.append(notes)
    if len(named) != 4:
        groups.sort(key=lambda g: -sum(n[1] for n in g) / max(len(g), 1))
    return Piece([Note(s, v, p, d) for v, g in enumerate(groups) for s, p, d in g], time_signature=ts)


def read_corpus(source: str, limit: int = 0) -> Iterator[tuple[str, Piece]]:
    """(name, Piece) for each readable piece of `source`, sorted by name; unreadable ones are skipped."""
    if source == "bach":
        from music21 import corpus

        paths = sorted(corpus.getComposer("bach", fileExtensions=("mxl",)), key=lambda p: Path(p).name)
    else:
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise UserFileError(f"corpus source {source!r} is neither 'bach' nor a folder")
        paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (*MIDI_SUFFIXES, *XML_SUFFIXES))
        if not paths:
            raise UserFileError(f"{folder} holds no .mid, .midi, .xml, .mxl or .musicxml files")
    for path in paths[:limit or None]:
        try:
            piece = read_score(path)
        except LuoxiaError:
            continue
        if piece.notes:
            yield Path(path).stem, piece


def is_held_out(index: int, val_every: int) -> bool:
    return index % val_every == val_every - 1


def training_texts(pieces: list[tuple[str, Piece]], cfg: CorpusConfig) -> Iterator[tuple[str, str]]:
    """(token text, split) per document: held-out pieces once, the rest once per transposition."""
    lo, hi = tokens.PITCHES[0], tokens.PITCHES[-1]
    for index, (_name, piece) in enumerate(pieces):
        key = estimate_key(piece)
        if is_held_out(index, cfg.val_every):
            yield tokens.to_text(tokens.encode(piece, key, eos=False)), "val"
            continue
        pitches = [n.pitch for n in piece.notes]
        for shift in range(cfg.transpose[0], cfg.transpose[1] + 1):
            if lo <= min(pitches) + shift and max(pitches) + shift <= hi:
                moved = Key((key.tonic + shift) % 12, key.minor)
                yield tokens.to_text(tokens.encode(piece.transpose(shift), moved, eos=False)), "train"


def prepare(cfg: CorpusConfig, out: str | Path) -> dict:
    """Token shards of the corpus in `out` (the layout `luoxia.data.shards` defines); returns the manifest."""
    from luoxia.data.shards import write_shards

    cfg.validate()
    out = Path(out)
    pieces = list(read_corpus(cfg.source, cfg.limit))
    if len(pieces) < cfg.val_every:
        raise InvalidParameterError(f"{cfg.source} gave {len(pieces)} readable pieces; need at least "
                                    f"val_every = {cfg.val_every} to hold one out")
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tokens.backend_tokenizer()
    tokenizer.save(out)
    manifest = write_shards(training_texts(pieces, cfg), tokenizer, out, val_fraction=0.0)
    held_out = [name for i, (name, _) in enumerate(pieces) if is_held_out(i, cfg.val_every)]
    atomic.write_text(out / "pieces.json", json.dumps({"corpus": dataclasses.asdict(cfg), "vocab_version":
                                                       tokens.VOCAB_VERSION, "held_out": held_out,
                                                       "train": [n for n, _ in pieces if n not in held_out]},
                                                      indent=1))
    return manifest


def load_music_config(path: str | Path):
    """A `luoxia train music` config: the keys of `luoxia.train.config.TrainConfig` plus a `[corpus]`
    table (CorpusConfig). Returns (TrainConfig, CorpusConfig); paths are relative to the file."""
    from luoxia.core.config import from_dict, load_toml
    from luoxia.train.config import TrainConfig

    raw = load_toml(path)
    corpus = from_dict(CorpusConfig, raw.pop("corpus", {}), where=f"{path} [corpus]")
    cfg = from_dict(TrainConfig, raw, where=str(path))
    base = Path(path).expanduser().parent
    cfg.data, cfg.out = (str(base / Path(p).expanduser()) if p else p for p in (cfg.data, cfg.out))
    if corpus.source != "bach":
        corpus.source = str(base / Path(corpus.source).expanduser())
    cfg.validate()
    corpus.validate()
    return cfg, corpus
