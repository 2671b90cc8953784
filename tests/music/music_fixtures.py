"""Fixtures for the music tests: hand-made pieces and MIDI files, a tiny untrained music model."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
import torch

from luoxia.music import tokens
from luoxia.music.score import Note, Piece, midi_bytes


def chorale_like(bars: int = 4) -> Piece:
    """Four voices in C major, one chord per beat (I-IV-V-I per bar), quarter notes."""
    chords = [(72, 67, 64, 48), (72, 69, 65, 53), (71, 67, 62, 55), (72, 67, 64, 48)]
    notes = [Note(4 * (b * 4 + beat), v, chords[beat][v], 4) for b in range(bars) for beat in range(4)
             for v in range(4)]
    return Piece(notes, (4, 4), tempo=100.0)


@pytest.fixture
def piece() -> Piece:
    return chorale_like()


@pytest.fixture
def midi_file(tmp_path: Path, piece: Piece) -> Path:
    path = tmp_path / "chorale.mid"
    path.write_bytes(midi_bytes(piece))
    return path


@pytest.fixture
def drum_midi(tmp_path: Path) -> Path:
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    for _ in range(4):
        track += [mido.Message("note_on", channel=9, note=36, velocity=100, time=0),
                  mido.Message("note_off", channel=9, note=36, velocity=0, time=480)]
    midi.tracks.append(track)
    path = tmp_path / "drums.mid"
    midi.save(str(path))
    return path


@pytest.fixture
def empty_midi(tmp_path: Path) -> Path:
    midi = mido.MidiFile(ticks_per_beat=480)
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)]))
    path = tmp_path / "empty.mid"
    midi.save(str(path))
    return path


def make_music_model(directory: Path, context: int = 256, seed: int = 0) -> Path:
    """An untrained 1-layer model over the music vocabulary, saved as `luoxia train music` exports it."""
    from luoxia.text.formats.hf import save_hf
    from luoxia.text.model import Transformer
    from luoxia.text.model_config import TransformerConfig

    torch.manual_seed(seed)
    config = TransformerConfig(vocab_size=len(tokens.VOCAB), dim=32, n_layers=1, n_heads=2, ffn_dim=64,
                               max_seq_len=context)
    model = Transformer(config)
    model.init_weights(0.02)
    save_hf(directory, config, model.state_dict(), tokens.backend_tokenizer(), name="tiny-music")
    return directory


@pytest.fixture(scope="session")
def tiny_music_model(tmp_path_factory) -> Path:
    return make_music_model(tmp_path_factory.mktemp("tiny_music"))


@pytest.fixture
def run_luoxia(capsys):
    """Run `luoxia ARGV...` in this process: (exit code, stdout, stderr)."""
    from luoxia.cli.main import main

    def run(*argv) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
