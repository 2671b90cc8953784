"""The music metrics on hand-made pieces whose values are known by hand."""

from __future__ import annotations

import math

import pytest

from luoxia.eval import music as M
from luoxia.music.score import Note, Piece


def scale(pitches, step=4, voice=0) -> Piece:
    return Piece([Note(i * step, voice, p, step) for i, p in enumerate(pitches)])


def test_pitch_class_entropy():
    assert M.pitch_class_entropy(scale([60, 72, 84])) == 0  # one pitch class
    assert M.pitch_class_entropy(scale([60, 62])) == pytest.approx(1.0)
    assert M.pitch_class_entropy(scale(range(60, 72))) == pytest.approx(math.log2(12))
    assert math.isnan(M.pitch_class_entropy(Piece([])))


def test_scale_consistency():
    assert M.scale_consistency(scale([60, 62, 64, 65, 67, 69, 71])) == 1.0  # C major
    assert M.scale_consistency(scale([57, 59, 60, 62, 64, 65, 67])) == 1.0  # A natural minor
    assert M.scale_consistency(scale(range(60, 72))) == pytest.approx(7 / 12)


def test_pitch_range_and_polyphony():
    chord = Piece([Note(0, v, p, 8) for v, p in enumerate([72, 67, 64, 48])] + [Note(8, 0, 74, 8)])
    assert M.pitch_range(chord) == 26
    assert M.polyphony(chord) == pytest.approx((8 * 4 + 8 * 1) / 16)


def test_empty_beat_rate():
    # notes on beats 0 and 3 of a 4-beat bar (a half-note rest between): 2 of 4 beats empty
    piece = Piece([Note(0, 0, 60, 4), Note(12, 0, 62, 4)])
    assert M.empty_beat_rate(piece) == 0.5
    assert M.empty_beat_rate(scale([60, 62, 64, 65])) == 0
    pickup = Piece([Note(12, 0, 60, 4), Note(16, 0, 62, 4), Note(24, 0, 64, 4)])  # starts on beat 4
    assert M.empty_beat_rate(pickup) == 0.25  # beats 4..7 counted; beat 6 is empty


def test_groove_consistency():
    same = Piece([Note(b * 16 + p, 0, 60, 2) for b in range(3) for p in (0, 4, 8, 12)])
    assert M.groove_consistency(same) == 1.0
    # bar 0 onsets at 0,4,8,12; bar 1 only at 0: 3 of 16 positions differ
    changed = Piece([Note(p, 0, 60, 2) for p in (0, 4, 8, 12)] + [Note(16, 0, 60, 16)])
    assert M.groove_consistency(changed) == pytest.approx(1 - 3 / 16)
    assert math.isnan(M.groove_consistency(scale([60])))


def test_voice_range(piece):
    assert M.voice_range(piece) == 1.0  # every voice of the fixture sits in its range
    wrong = Piece([Note(0, 0, 50, 4), Note(0, 3, 36, 4), Note(4, 1, 60, 4), Note(4, 2, 55, 4)])
    assert M.voice_range(wrong) == 0.5
    assert M.summarise_voices([wrong]) == {"soprano": 0.0, "alto": 1.0, "tenor": 1.0, "bass": 0.0}


def test_report_checks_targets(piece):
    close = piece.transpose(2)
    far = scale(range(60, 72))
    result = M.report({"chorales": [piece], "close": [close], "far": [far]}, "chorales")
    assert result["targets_met"]["close"] == {"pitch_class_entropy": True, "scale_consistency": True,
                                              "voice_range": True}
    assert result["targets_met"]["far"]["pitch_class_entropy"] is False
    assert result["targets_met"]["far"]["scale_consistency"] is False
    table = M.markdown(result)
    assert "| pitch_class_entropy |" in table and "✗" in table and "✓" in table


def test_metrics_of_a_hand_made_midi_file(tmp_path):
    """A C major scale as quarter notes, one rest beat, then a C major triad held for a half note."""
    import mido

    from luoxia.music.corpus import read_score

    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71]):
        track += [mido.Message("note_on", note=pitch, velocity=80, time=480 if i == 0 else 0),  # a beat's rest first
                  mido.Message("note_off", note=pitch, velocity=0, time=480)]
    triad = (48, 52, 55)
    track += [mido.Message("note_on", note=p, velocity=80, time=480 if i == 0 else 0) for i, p in enumerate(triad)]
    track += [mido.Message("note_off", note=p, velocity=0, time=960 if i == 0 else 0) for i, p in enumerate(triad)]
    midi.tracks.append(track)
    path = tmp_path / "scale.mid"
    midi.save(str(path))
    piece = read_score(path)
    assert len(piece.notes) == 10
    counts = [2, 1, 2, 1, 2, 1, 1]  # C, E and G twice
    assert M.pitch_class_entropy(piece) == pytest.approx(-sum(c / 10 * math.log2(c / 10) for c in counts))
    assert M.scale_consistency(piece) == 1.0
    assert M.pitch_range(piece) == 71 - 48
    assert M.polyphony(piece) == pytest.approx((7 * 4 * 1 + 8 * 3) / (7 * 4 + 8))  # scale 28 16ths, chord 8
    assert M.empty_beat_rate(piece) == pytest.approx(1 / 10)  # beats from the first note: 7 + 1 rest + 2
