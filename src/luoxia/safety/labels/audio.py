"""Audio labels: a Morse "AI" cue at the start; WAV RIFF chunk `AIGC`, or MP3 ID3 `TXXX:AIGC`.

WAV is written here (16-bit PCM, chunks `fmt `, `data`, `AIGC`, `lxpv` = provenance JSON); the
signature covers the `fmt ` and `data` chunk bodies. MP3 is encoded by the ffmpeg of
imageio-ffmpeg and tagged with mutagen; the signature covers the MPEG frames (the file without
its ID3v2 and ID3v1 tags).
"""

from __future__ import annotations

import dataclasses
import json
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, InvalidParameterError
from luoxia.safety.labels import Found, aigc
from luoxia.safety.labels.visible import LabelOptions, morse_cue, morse_pattern


def as_audio(content: object) -> tuple[np.ndarray, int]:
    """(samples (N,) or (N, C) float in [-1, 1], sample_rate) from an Audio or a (samples, rate) pair."""
    samples, rate = (content.samples, content.sample_rate) if hasattr(content, "samples") else content
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim not in (1, 2) or samples.size == 0 or int(rate) <= 0:
        raise InvalidParameterError(f"an audio artifact needs samples (N,) or (N, C) and a positive sample rate; "
                                    f"got {samples.shape} at {rate} Hz")
    return samples, int(rate)


def with_cue(samples: np.ndarray, rate: int, options: LabelOptions) -> np.ndarray:
    cue = morse_cue(rate, options)
    if samples.ndim == 2:
        cue = np.repeat(cue[:, None], samples.shape[1], axis=1)
    return np.concatenate([cue, samples])


def _pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes()


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def wav_bytes(samples: np.ndarray, rate: int, extra: list[tuple[bytes, bytes]] = ()) -> tuple[bytes, str]:
    """A 16-bit PCM WAV file and the hash of its `fmt ` + `data` bodies."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    data = _pcm16(samples)
    chunks = _chunk(b"fmt ", fmt) + _chunk(b"data", data) + b"".join(_chunk(c, b) for c, b in extra)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks, aigc.sha256(fmt + data)


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise CorruptFileError("not a RIFF/WAVE file; check the file")
    out, i = [], 12
    while i + 8 <= len(data):
        cid, size = data[i:i + 4], struct.unpack("<I", data[i + 4:i + 8])[0]
        out.append((cid, data[i + 8:i + 8 + size]))
        i += 8 + size + (size % 2)
    return out


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def mp3_frames(data: bytes) -> bytes:
    """The MPEG audio frames: the file without a leading ID3v2 tag and a trailing ID3v1 tag."""
    if data[:3] == b"ID3" and len(data) >= 10:
        size = 0
        for b in data[6:10]:
            size = (size << 7) | (b & 0x7F)
        data = data[10 + size + (10 if data[5] & 0x10 else 0):]
    if len(data) >= 128 and data[-128:-125] == b"TAG":
        data = data[:-128]
    return data


def write(path: Path, fmt: str, content: object, provenance, options: LabelOptions) -> None:
    samples, rate = as_audio(content)
    if options.visible:
        samples = with_cue(samples, rate, options)
    if fmt == "wav":
        _, payload = wav_bytes(samples, rate)
        provenance = dataclasses.replace(provenance, content_sha256=payload, labels=options.record("audio"))
        record = provenance.to_dict()
        label = aigc.make_label(payload, provenance.produce_id, record, options.producer)
        data, _ = wav_bytes(samples, rate, [(b"AIGC", aigc.dumps(label).encode()),
                                            (b"lxpv", json.dumps(record, ensure_ascii=True).encode())])
        atomic.write_bytes(path, data)
        return
    from mutagen.id3 import ID3, TXXX

    with tempfile.TemporaryDirectory() as tmp:
        wav, mp3 = Path(tmp) / "in.wav", Path(tmp) / "out.mp3"
        wav.write_bytes(wav_bytes(samples, rate)[0])
        subprocess.run([_ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", "-b:a", "128k",
                        "-map_metadata", "-1", "-id3v2_version", "0", "-write_id3v1", "0", str(mp3)],
                       check=True, capture_output=True)
        payload = aigc.sha256(mp3_frames(mp3.read_bytes()))
        provenance = dataclasses.replace(provenance, content_sha256=payload, labels=options.record("audio"))
        record = provenance.to_dict()
        label = aigc.make_label(payload, provenance.produce_id, record, options.producer)
        tags = ID3()
        tags.add(TXXX(encoding=0, desc="AIGC", text=[aigc.dumps(label)]))
        tags.add(TXXX(encoding=0, desc="luoxia_provenance", text=[json.dumps(record, ensure_ascii=True)]))
        tags.save(str(mp3), v2_version=4)
        atomic.write_bytes(path, mp3.read_bytes())


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Samples (N,) or (N, C) and the rate of a WAV (16-bit PCM) or MP3 file."""
    data = path.read_bytes()
    if data[:4] == b"RIFF":
        chunks = dict(riff_chunks(data))
        _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunks[b"fmt "][:16])
        samples = np.frombuffer(chunks[b"data"], dtype="<i2").astype(np.float32) / 32767
        return (samples if channels == 1 else samples.reshape(-1, channels)), rate
    rate = 16000  # MP3: decoded by ffmpeg, mono, at a fixed rate (enough to read the cue)
    out = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(rate), "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.float32) / 32767, rate


def read(path: Path, fmt: str) -> Found:
    data = path.read_bytes()
    found = Found(fmt, None, 0, None, "", None)
    labels: list[bytes] = []
    if fmt == "wav":
        chunks = riff_chunks(data)
        bodies = dict(chunks)
        if b"fmt " not in bodies or b"data" not in bodies:
            raise CorruptFileError(f"{path} has no fmt/data chunk; check the file")
        found.payload_sha256 = aigc.sha256(bodies[b"fmt "] + bodies[b"data"])
        labels = [body for cid, body in chunks if cid == b"AIGC"]
        if b"lxpv" in bodies:
            found.provenance = json.loads(bodies[b"lxpv"])
    else:
        from mutagen.id3 import ID3, ID3NoHeaderError

        found.payload_sha256 = aigc.sha256(mp3_frames(data))
        try:
            tags = ID3(str(path))
        except ID3NoHeaderError:
            tags = None
        if tags is not None:
            labels = [t.text[0].encode() for t in tags.getall("TXXX") if t.desc == "AIGC"]
            prov = [t.text[0] for t in tags.getall("TXXX") if t.desc == "luoxia_provenance"]
            if prov:
                found.provenance = json.loads(prov[0])
    found.copies = len(labels)
    found.take_label(labels, "AIGC", "no AIGC chunk" if fmt == "wav" else "no ID3 TXXX:AIGC")
    record = (found.provenance or {}).get("labels", {})
    if record.get("visible"):
        samples, rate = decode(path)
        options = LabelOptions(cue_hz=record.get("hz", 880.0), cue_unit_s=record.get("unit_s", 0.06))
        found.visible = morse_pattern(samples, rate, options) == ".- .."
    return found
