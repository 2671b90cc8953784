"""The in-memory score: notes on a 16th-note grid in up to four voices, and its MIDI I/O.

    piece = read_midi("intro.mid")            # any MIDI file: drums dropped, voices assigned
    piece.transpose(2).retime(100)            # new Piece objects; the original is unchanged
    data = to_midi(piece)                     # a mido.MidiFile, one track per voice

Time is counted in ticks of a 16th note (TICKS_PER_QUARTER = 4), bars start at multiples of
`bar_ticks`. Voices are 0..3 = soprano, alto, tenor, bass (or the highest to lowest part of any piece).
"""

from __future__ import annotations

import dataclasses
import io
from collections import defaultdict
from pathlib import Path

import mido
import numpy as np

from luoxia.core.errors import CorruptFileError, InvalidParameterError, UserFileError

TICKS_PER_QUARTER = 4
MIDI_TICKS_PER_BEAT = 480
N_VOICES = 4
VOICE_NAMES = ("soprano", "alto", "tenor", "bass")
DRUM_CHANNEL = 9
DEFAULT_PROGRAM = 52  # General MIDI "Choir Aahs"


@dataclasses.dataclass(frozen=True, order=True)
class Note:
    start: int  # ticks (16ths) from the first bar line
    voice: int  # 0 soprano .. 3 bass
    pitch: int  # MIDI note number
    duration: int  # ticks, at least 1
    velocity: int = 80


@dataclasses.dataclass
class Piece:
    notes: list[Note]
    time_signature: tuple[int, int] = (4, 4)
    tempo: float = 90.0  # quarter notes per minute
    program: int = DEFAULT_PROGRAM

    def __post_init__(self) -> None:
        self.notes = sorted(self.notes)

    @property
    def bar_ticks(self) -> int:
        num, den = self.time_signature
        return num * 4 * TICKS_PER_QUARTER // den

    @property
    def end(self) -> int:
        return max((n.start + n.duration for n in self.notes), default=0)

    @property
    def n_bars(self) -> int:
        return -(-self.end // self.bar_ticks)

    def voice(self, v: int) -> list[Note]:
        return [n for n in self.notes if n.voice == v]

    def transpose(self, semitones: int) -> Piece:
        notes = [dataclasses.replace(n, pitch=n.pitch + semitones) for n in self.notes]
        if any(not 0 <= n.pitch <= 127 for n in notes):
            raise InvalidParameterError(f"transposing by {semitones} semitones leaves the MIDI range 0..127; "
                                        "transpose by less")
        return dataclasses.replace(self, notes=notes)

    def retime(self, tempo: float) -> Piece:
        if not 10 <= tempo <= 400:
            raise InvalidParameterError(f"tempo must be 10..400 quarter notes per minute, got {tempo}")
        return dataclasses.replace(self, tempo=float(tempo))

    def bars(self, first: int, last: int) -> Piece:
        """Bars [first, last) only, moved to start at bar 0 (notes cut at the end)."""
        lo, hi = first * self.bar_ticks, last * self.bar_ticks
        notes = [dataclasses.replace(n, start=n.start - lo, duration=min(n.duration, hi - n.start))
                 for n in self.notes if lo <= n.start < hi]
        return dataclasses.replace(self, notes=notes)

    def roll(self) -> np.ndarray:
        """(128, end) int8 piano roll: voice + 1 where a note sounds, else 0 (the lowest voice wins ties)."""
        grid = np.zeros((128, self.end), dtype=np.int8)
        for n in sorted(self.notes, key=lambda n: -n.voice):
            grid[n.pitch, n.start:n.start + n.duration] = n.voice + 1
        return grid


def assign_voices(groups: list[list[tuple[int, int, int, int]]]) -> list[Note]:
    """Notes (start, pitch, duration, velocity) grouped by track → notes in at most four voices.

    Up to four groups: one voice each, highest mean pitch first. One polyphonic group (a piano
    part) or more than four: the notes starting together are split by pitch, highest to the soprano,
    lowest to the bass, the rest to alto then tenor.
    """
    groups = [g for g in groups if g]
    polyphonic = len(groups) == 1 and len({n[0] for n in groups[0]}) < len(groups[0])
    if len(groups) <= N_VOICES and not polyphonic:
        order = sorted(groups, key=lambda g: -np.mean([n[1] for n in g]))
        return [Note(s, v, p, d, vel) for v, g in enumerate(order) for s, p, d, vel in g]
    by_start: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    for g in groups:
        for n in g:
            by_start[n[0]].append(n)
    notes = []
    for chord in by_start.values():
        chord = sorted(chord, key=lambda n: -n[1])
        k = len(chord)
        for i, (s, p, d, vel) in enumerate(chord):
            v = 0 if i == 0 else 3 if i == k - 1 else min(i, 2)
            notes.append(Note(s, v, p, d, vel))
    return notes


def read_midi(path: str | Path) -> Piece:
    """A MIDI file as a Piece (quantised to 16ths; drums on channel 10 dropped)."""
    try:
        midi = mido.MidiFile(str(path))
    except FileNotFoundError:
        raise UserFileError(f"no such file: {path}") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise CorruptFileError(f"{path} is not a readable MIDI file ({e}); give a .mid file") from None
    return from_mido(midi, str(path))


def from_mido(midi: mido.MidiFile, where: str = "the MIDI data") -> Piece:
    tpb = midi.ticks_per_beat or MIDI_TICKS_PER_BEAT
    tempo, time_sig, program = 500000, None, None
    groups: dict[tuple[int, int], list[tuple[int, int, int, int]]] = defaultdict(list)
    drums = 0
    for t, track in enumerate(midi.tracks):
        now, open_notes = 0, {}
        for msg in track:
            now += msg.time
            if msg.type == "set_tempo" and tempo == 500000:
                tempo = msg.tempo
            elif msg.type == "time_signature" and time_sig is None:
                time_sig = (msg.numerator, msg.denominator)
            elif msg.type == "program_change" and program is None and msg.channel != DRUM_CHANNEL:
                program = msg.program
            elif msg.type in ("note_on", "note_off"):
                if msg.channel == DRUM_CHANNEL:
                    drums += 1
                    continue
                key = (msg.channel, msg.note)
                if msg.type == "note_on" and msg.velocity > 0:
                    open_notes.setdefault(key, (now, msg.velocity))
                elif key in open_notes:
                    start, vel = open_notes.pop(key)
                    s, e = round(start * TICKS_PER_QUARTER / tpb), round(now * TICKS_PER_QUARTER / tpb)
                    groups[(t, msg.channel)].append((s, msg.note, max(1, e - s), vel))
    if not groups:
        what = "only drums" if drums else "no notes"
        raise InvalidParameterError(f"{where} has {what}; give a MIDI file with pitched notes")
    piece = Piece(assign_voices(list(groups.values())), time_signature=time_sig or (4, 4),
                  tempo=round(60_000_000 / tempo, 2), program=program if program is not None else DEFAULT_PROGRAM)
    if piece.bar_ticks < 1 or piece.bar_ticks > 32:
        piece.time_signature = (4, 4)
    return piece


def to_midi(piece: Piece) -> mido.MidiFile:
    """A type-1 MIDI file: a conductor track (tempo, metre) and one track per voice."""
    scale = MIDI_TICKS_PER_BEAT // TICKS_PER_QUARTER
    midi = mido.MidiFile(type=1, ticks_per_beat=MIDI_TICKS_PER_BEAT)
    conductor = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(piece.tempo), time=0),
        mido.MetaMessage("time_signature", numerator=piece.time_signature[0], denominator=piece.time_signature[1],
                         time=0),
    ])
    midi.tracks.append(conductor)
    for v in range(N_VOICES):
        notes = piece.voice(v)
        if not notes:
            continue
        events = []
        for n in notes:
            events.append((n.start * scale, 1, n.pitch, n.velocity))
            events.append(((n.start + n.duration) * scale, 0, n.pitch, 0))
        events.sort()  # note-offs (0) before note-ons (1) at the same time
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=VOICE_NAMES[v], time=0),
                                mido.Message("program_change", channel=v, program=piece.program, time=0)])
        now = 0
        for t, on, pitch, vel in events:
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=v, note=pitch, velocity=vel, time=t - now))
            now = t
        midi.tracks.append(track)
    return midi


def midi_bytes(piece: Piece) -> bytes:
    buf = io.BytesIO()
    to_midi(piece).save(file=buf)
    return buf.getvalue()
