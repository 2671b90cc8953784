"""`luoxia music` and `luoxia eval music` end to end: labelled MIDI, WAV and PNG; one-line errors."""

from __future__ import annotations

import json

import pytest

from luoxia.music.corpus import read_score
from luoxia.safety.labels import read


def _labelled(path, fmt):
    found = read(path)
    assert found.format == fmt and found.label is not None and found.label["AIGC"]["Label"] == "1"
    return found


def test_compose_writes_labelled_midi_wav_and_png(run_luoxia, tiny_music_model, tmp_path):
    out = tmp_path / "out.mid"
    code, stdout, err = run_luoxia("music", "--model", tiny_music_model, "--bars", 2, "--key", "G major", "-n", 2,
                                   "--seed", 5, "--tempo", 120, "--audio", "numpy", "-o", out, "--json")
    assert code == 0, err
    files = json.loads(stdout)["files"]
    assert [[p.rsplit("/", 1)[1] for p in group] for group in files] == [
        ["out_000.mid", "out_000.wav", "out_000.png"], ["out_001.mid", "out_001.wav", "out_001.png"]]
    found = _labelled(tmp_path / "out_001.mid", "midi")
    assert found.provenance["seed"] == 6 and found.provenance["params"]["mode"] == "compose"
    _labelled(tmp_path / "out_000.wav", "wav")
    assert _labelled(tmp_path / "out_000.png", "png").visible is True
    piece = read_score(tmp_path / "out_000.mid")
    assert piece.tempo == pytest.approx(120, abs=0.01) and piece.end <= 32
    assert "AI-generated" in err


def test_harmonise_and_fluidsynth(run_luoxia, tiny_music_model, midi_file, tmp_path):
    from luoxia.music.render import fluidsynth_available

    audio = "fluidsynth" if fluidsynth_available() else "numpy"
    out = tmp_path / "h.mid"
    code, _, err = run_luoxia("music", "--model", tiny_music_model, "--melody", midi_file, "--audio", audio, "-o", out)
    assert code == 0, err
    melody, result = read_score(midi_file), read_score(out)
    assert [(n.start, n.pitch) for n in result.voice(0)] == [(n.start, n.pitch) for n in melody.voice(0)]
    assert _labelled(tmp_path / "h.wav", "wav").provenance["stats"]["audio_engine"] == audio


def test_transform_needs_no_model(run_luoxia, midi_file, tmp_path):
    out = tmp_path / "t.mid"
    code, _, err = run_luoxia("music", "--piece", midi_file, "--transpose", 3, "--tempo", 60, "--audio", "numpy",
                              "-o", out)
    assert code == 0, err
    before, after = read_score(midi_file), read_score(out)
    assert [n.pitch + 3 for n in before.notes] == [n.pitch for n in after.notes] and after.tempo == 60
    assert _labelled(out, "midi").provenance["params"]["mode"] == "transform"


@pytest.mark.parametrize("extra, words", [
    (["--key", "H minor"], "unknown key 'H minor'"),
    (["--time-signature", "7/4"], "time signature '7/4'"),
    (["--temperature", "-1"], "temperature"),
    (["-n", "0"], "-n must be"),
    (["-o", "x.wav"], "must end in .mid"),
])
def test_bad_parameters_are_one_line_errors(run_luoxia, tiny_music_model, extra, words):
    code, _, err = run_luoxia("music", "--model", tiny_music_model, *extra)
    assert code == 2 and err.startswith("luoxia: error:") and words in err and len(err.strip().splitlines()) == 1


def test_bad_inputs_are_one_line_errors(run_luoxia, tiny_music_model, drum_midi, empty_midi, tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("床前明月光")
    small = tiny_music_model.parent / "small"
    from music_fixtures import chorale_like, make_music_model

    from luoxia.music.score import midi_bytes

    make_music_model(small, context=64)
    long_prompt = tmp_path / "long.mid"
    long_prompt.write_bytes(midi_bytes(chorale_like(8)))
    cases = [(["--prompt-midi", text], "not a MIDI or MusicXML"), (["--melody", drum_midi], "only drums"),
             (["--prompt-midi", empty_midi], "no notes"), (["--piece", tmp_path / "missing.mid"], "no such file"),
             (["--model", small, "--prompt-midi", long_prompt], "context of 64")]
    for extra, words in cases:
        argv = ["music", *extra] if "--model" in extra else ["music", "--model", tiny_music_model, *extra]
        code, _, err = run_luoxia(*argv, "-o", tmp_path / "x.mid")
        assert code == 2 and err.startswith("luoxia: error:") and words in err, (extra, err)
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.mid").exists()


def test_eval_music_report(run_luoxia, tiny_music_model, tmp_path, midi_file):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"p{i}.mid").write_bytes(midi_file.read_bytes())
    code, out, err = run_luoxia("eval", "music", "--model", tiny_music_model, "--corpus", corpus, "--val-every", 2,
                                "-n", 2, "--bars", 2, "-o", tmp_path / "report")
    assert code == 0, err
    result = json.loads((tmp_path / "report" / "report.json").read_text())
    assert result["pieces"] == {"chorales": 2, "composed": 2, "harmonised": 2}
    assert result["metrics"]["chorales"]["voice_range"] == 1.0 and result["val_loss"] > 0
    assert result["key_adherence"]["asked"] == ["C major", "C# major"]
    assert 0 <= result["key_adherence"]["same_key"] <= result["key_adherence"]["same_signature"] <= 1
    assert "| scale_consistency |" in (tmp_path / "report" / "report.md").read_text() and "voice_range" in out
