"""Every file type round-trips through `Artifact.save` and `luoxia.safety.inspect`: both labels, one copy,
signature valid; editing content, label or provenance is caught; the visible label is really there."""

from __future__ import annotations

import io
import json
import re

import mido
import numpy as np
import pytest
from PIL import Image

from luoxia.core.artifact import TEXT_NOTICE, Artifact, Audio, Video
from luoxia.core.errors import InvalidParameterError
from luoxia.core.provenance import Provenance
from luoxia.safety.inspect import inspect
from luoxia.safety.labels import LabelOptions, aigc
from luoxia.safety.labels.visible import label_box, morse_cue, morse_pattern


def gradient(h: int = 96, w: int = 128) -> np.ndarray:
    g = np.zeros((h, w, 3), np.uint8)
    g[..., 0] = np.linspace(0, 255, w)[None]
    g[..., 1] = np.linspace(0, 255, h)[:, None]
    g[..., 2] = 128
    return g


def tiny_midi() -> bytes:
    midi = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    for note in (60, 64, 67):
        track.append(mido.Message("note_on", note=note, velocity=64, time=0))
        track.append(mido.Message("note_off", note=note, velocity=0, time=96))
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


RATE = 16000
SINE = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE // 2) / RATE)
CASES = {
    "a.txt": ("text", "The sea was calm."),
    "a.md": ("text", "# Title\n\nSome *markdown*."),
    "a.png": ("image", gradient()),
    "a.jpg": ("image", gradient()),
    "a.webp": ("image", gradient()),
    "a.wav": ("audio", Audio(SINE, RATE)),
    "a.mp3": ("audio", Audio(SINE, RATE)),
    "a.mid": ("midi", tiny_midi()),
    "a.mp4": ("video", Video(np.stack([np.roll(gradient(), 3 * i, axis=1) for i in range(30)]), 12)),
}


def provenance() -> Provenance:
    return Provenance(model="test-model", params={"temperature": 0.7}, seed=3, prompt="a prompt")


@pytest.mark.parametrize("name", list(CASES))
def test_round_trip_every_file_type(tmp_path, name):
    kind, content = CASES[name]
    path = Artifact(kind, content, provenance()).save(tmp_path / name)
    report = inspect(path)
    assert report.status == "labelled" and report.exit_code == 0, report.problems
    assert report.found.copies == 1
    fields = report.found.label["AIGC"]
    assert list(fields) == list(aigc.FIELDS) and fields["Label"] == "1"
    assert fields["ContentPropagator"] == fields["ContentProducer"] == "luoxia"
    assert fields["PropagateID"] == fields["ProduceID"] and fields["ReservedCode2"] == fields["ReservedCode1"]
    assert all(" " <= c <= "~" for v in fields.values() for c in v)
    assert report.found.provenance["model"] == "test-model" and report.found.provenance["prompt"] == "a prompt"
    if kind != "midi":
        assert report.found.visible is True
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_text_sidecar_and_markdown_front_matter(tmp_path):
    Artifact("text", "hello", provenance()).save(tmp_path / "a.txt")
    body = (tmp_path / "a.txt").read_text()
    assert body == f"hello\n\n{TEXT_NOTICE}\n"
    sidecar = json.loads((tmp_path / "a.txt.aigc.json").read_text())
    assert next(iter(sidecar)) == "AIGC" and sidecar["model"] == "test-model"
    Artifact("text", "hello", provenance()).save(tmp_path / "b.md")
    md = (tmp_path / "b.md").read_text()
    assert md.startswith('---\nAIGC: {"Label":"1","ContentProducer":"luoxia",') and md.endswith(f"{TEXT_NOTICE}\n")
    assert not (tmp_path / "b.md.aigc.json").exists()


def test_png_xmp_is_in_the_itxt_chunk_with_iptc(tmp_path):
    Artifact("image", gradient(), provenance()).save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    assert data.count(b"iTXtXML:com.adobe.xmp") == 1 and data.count(b"<TC260:AIGC>") == 1
    assert b'xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/"' in data
    assert b"digitalsourcetype/trainedAlgorithmicMedia" in data


def test_wav_has_an_aigc_riff_chunk(tmp_path):
    from luoxia.safety.labels.audio import riff_chunks

    Artifact("audio", Audio(SINE, RATE), provenance()).save(tmp_path / "a.wav")
    chunks = [cid for cid, _ in riff_chunks((tmp_path / "a.wav").read_bytes())]
    assert chunks.count(b"AIGC") == 1 and b"fmt " in chunks and b"data" in chunks


def test_mp4_keeps_the_aigc_key(tmp_path):
    from luoxia.safety.labels.video import metadata

    _, content = CASES["a.mp4"]
    Artifact("video", content, provenance()).save(tmp_path / "a.mp4")
    assert len(metadata(tmp_path / "a.mp4")["AIGC"]) == 1


def test_image_label_is_big_enough_and_in_the_chosen_corner(tmp_path):
    for position in ("bottom-right", "top-left"):
        options = LabelOptions(position=position)
        x0, y0, x1, y1 = label_box(200, 120, options)
        assert (y1 - y0) >= 0.05 * 120
        assert (x0 == 0) == position.endswith("left") and (y0 == 0) == position.startswith("top")
        Artifact("image", gradient(120, 200), provenance()).save(tmp_path / f"{position}.png", label=options)
        assert inspect(tmp_path / f"{position}.png").status == "labelled"
    with pytest.raises(InvalidParameterError, match="position"):
        Artifact("image", gradient(), provenance()).save(tmp_path / "x.png", label=LabelOptions(position="middle"))


def test_turning_the_visible_label_off_is_recorded(tmp_path):
    path = Artifact("image", gradient(), provenance()).save(tmp_path / "a.png", label=LabelOptions(visible=False))
    report = inspect(path)
    assert report.status == "labelled"
    assert report.found.provenance["labels"] == {"visible": False, "disabled_by": "LabelOptions(visible=False)"}
    assert any("explicitly" in p for p in report.problems)
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), gradient())


def test_morse_cue_reads_back_as_ai():
    options = LabelOptions()
    cue = morse_cue(RATE, options)
    assert morse_pattern(np.concatenate([cue, SINE]), RATE, options) == ".- .."
    assert morse_pattern(SINE, RATE, options) != ".- .."


def test_tampering_is_detected(tmp_path):
    path = Artifact("text", "The sea was calm.", provenance()).save(tmp_path / "a.txt")
    path.write_text(path.read_text().replace("calm", "rough"))
    assert inspect(path).status == "tampered" and inspect(path).exit_code == 4

    side = Artifact("text", "x", provenance()).save(tmp_path / "b.txt")
    record = json.loads((tmp_path / "b.txt.aigc.json").read_text())
    record["model"] = "someone-else"
    (tmp_path / "b.txt.aigc.json").write_text(json.dumps(record))
    assert inspect(side).status == "tampered"

    png = Artifact("image", gradient(), provenance()).save(tmp_path / "a.png")
    image = Image.open(png)
    pixels = np.asarray(image).copy()
    pixels[0, 0] = 0
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", image.info["XML:com.adobe.xmp"], zip=False)
    Image.fromarray(pixels).save(png, pnginfo=info)
    assert inspect(png).status == "tampered"

    wav = Artifact("audio", Audio(SINE, RATE), provenance()).save(tmp_path / "a.wav")
    data = bytearray(wav.read_bytes())
    data[100] ^= 0xFF
    wav.write_bytes(bytes(data))
    assert inspect(wav).status == "tampered"


def test_two_copies_count_as_tampered(tmp_path):
    path = Artifact("text", "x", provenance()).save(tmp_path / "a.md")
    text = path.read_text()
    line = re.search(r"^AIGC: .*$", text, re.M).group(0)
    path.write_text(text.replace(line, line + "\n" + line, 1))
    report = inspect(path)
    assert report.status == "tampered" and report.found.copies == 2


def test_unlabelled_files_are_missing(tmp_path):
    (tmp_path / "plain.txt").write_text("hand written\n")
    Image.fromarray(gradient()).save(tmp_path / "plain.png")
    for name in ("plain.txt", "plain.png"):
        assert inspect(tmp_path / name).status == "missing" and inspect(tmp_path / name).exit_code == 3


def test_another_key_is_unverifiable_not_tampered(tmp_path, monkeypatch):
    path = Artifact("text", "x", provenance()).save(tmp_path / "a.txt")
    monkeypatch.setenv(aigc.KEY_ENV, "some other key")
    assert inspect(path).status == "unverifiable"


def test_bad_content_and_extension_are_user_errors(tmp_path):
    with pytest.raises(InvalidParameterError, match=".png"):
        Artifact("image", gradient(), provenance()).save(tmp_path / "a.bmp")
    with pytest.raises(InvalidParameterError, match="uint8"):
        Artifact("image", np.zeros((4, 4, 3)), provenance()).save(tmp_path / "a.png")
    with pytest.raises(InvalidParameterError, match="printable ASCII"):
        Artifact("text", "x", provenance()).save(tmp_path / "a.txt", label=LabelOptions(producer="落霞"))
