"""Tokens and scores: MIDI → Piece → tokens → Piece → MIDI keeps every note; keys; voice assignment."""

from __future__ import annotations

import mido
import pytest

from luoxia.core.errors import CorruptFileError, InvalidParameterError
from luoxia.music import tokens
from luoxia.music.corpus import read_score
from luoxia.music.keys import Key, estimate_key, parse_key, shift_to
from luoxia.music.score import Note, Piece, assign_voices, from_mido, midi_bytes, read_midi, to_midi


def test_midi_tokens_midi_round_trip(midi_file, piece, tmp_path):
    read = read_midi(midi_file)
    assert read.notes == piece.notes and read.time_signature == (4, 4) and read.tempo == pytest.approx(100, abs=0.01)
    ids = tokens.encode(read, Key(0))
    decoded, header = tokens.decode(ids, tempo=read.tempo)
    assert header.key == Key(0) and decoded.notes == piece.notes
    again = tmp_path / "again.mid"
    again.write_bytes(midi_bytes(decoded))
    assert read_midi(again).notes == piece.notes


def test_round_trip_keeps_rests_pickups_velocities_and_metre():
    notes = [Note(8, 0, 79, 4, 100), Note(8, 3, 43, 12, 100), Note(20, 0, 81, 2, 60), Note(22, 1, 70, 1, 60),
             Note(40, 2, 60, 6, 30)]  # a pickup, an empty stretch, three velocities, 3/4 time
    piece = Piece(notes, (3, 4))
    decoded, header = tokens.decode(tokens.encode(piece, Key(7)))
    assert decoded.notes == [Note(n.start, n.voice, n.pitch, n.duration, {100: 96, 60: 64, 30: 32}[n.velocity])
                             for n in piece.notes]
    assert decoded.time_signature == (3, 4) and header.time_signature == (3, 4)


def test_token_text_is_what_the_word_level_tokenizer_reads(piece):
    ids = tokens.encode(piece, Key(0))
    tok = tokens.backend_tokenizer()
    assert tok.encode(tokens.to_text(ids), add_special_tokens=False) == ids
    assert tok.vocab_size == len(tokens.VOCAB)
    tokens.check_vocabulary(tok)


def test_encoding_layout(piece):
    names = [tokens.VOCAB[i] for i in tokens.encode(piece, Key(0))]
    assert names[:8] == ["<bos>", "Key_C_major", "TS_4/4", "Bar", "Key_C_major", "Pos_0", "Vel_80", "Voice_0"]
    assert names[-1] == "<eos>" and names.count("Bar") == 4 and names.count("Voice_2") == 16
    assert names.count("Key_C_major") == 5  # the header and after every bar line


def test_unsupported_metre_is_an_error():
    with pytest.raises(InvalidParameterError, match="time signature 7/4"):
        tokens.encode(Piece([Note(0, 0, 60, 4)], (7, 4)), Key(0))


@pytest.mark.parametrize("name, key", [("C", Key(0)), ("d minor", Key(2, True)), ("F# major", Key(6)),
                                       ("Bbm", Key(10, True)), ("eb", Key(3))])
def test_parse_key(name, key):
    assert parse_key(name) == key


@pytest.mark.parametrize("name", ["H minor", "C dorian", "", "major"])
def test_unknown_key_is_an_error(name):
    with pytest.raises(InvalidParameterError, match="unknown key"):
        parse_key(name)


def test_estimate_key(piece):
    assert estimate_key(piece) == Key(0)
    a_minor = Piece([Note(4 * i, 0, p, 4) for i, p in enumerate([57, 60, 64, 69, 64, 60, 57, 56, 57, 52, 57])])
    assert estimate_key(a_minor) == Key(9, True)
    assert estimate_key(piece.transpose(shift_to(Key(0), Key(2)))) == Key(2)
    assert shift_to(Key(0), Key(7)) == -5 and shift_to(Key(0), Key(6)) == 6


def test_voices_from_a_piano_part_split_by_pitch():
    notes = assign_voices([[(0, 60, 4, 80), (0, 64, 4, 80), (0, 67, 4, 80), (0, 48, 4, 80), (4, 72, 4, 80)]])
    by_voice = {n.pitch: n.voice for n in notes}
    assert by_voice == {67: 0, 64: 1, 60: 2, 48: 3, 72: 0}


def test_tracks_become_voices_highest_first():
    midi = mido.MidiFile(ticks_per_beat=96)
    for pitch in (48, 72):
        midi.tracks.append(mido.MidiTrack([mido.Message("note_on", note=pitch, velocity=90, time=0),
                                           mido.Message("note_off", note=pitch, velocity=0, time=96)]))
    piece = from_mido(midi)
    assert [(n.voice, n.pitch, n.duration) for n in piece.notes] == [(0, 72, 4), (1, 48, 4)]


def test_bad_files_are_one_line_errors(tmp_path, drum_midi, empty_midi):
    text = tmp_path / "notes.mid"
    text.write_text("not music at all")
    with pytest.raises(CorruptFileError, match="not a MIDI or MusicXML"):
        read_score(text)
    with pytest.raises(InvalidParameterError, match="only drums"):
        read_score(drum_midi)
    with pytest.raises(InvalidParameterError, match="no notes"):
        read_score(empty_midi)
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd\x00\x00\x00\x06\x00\x01")
    with pytest.raises(CorruptFileError):
        read_score(broken)


def test_transpose_and_retime(piece):
    moved = piece.transpose(-3).retime(60)
    assert [n.pitch for n in moved.notes] == [n.pitch - 3 for n in piece.notes] and moved.tempo == 60
    assert to_midi(moved).tracks[0][0].tempo == 1_000_000
    with pytest.raises(InvalidParameterError, match="MIDI range"):
        piece.transpose(60)
