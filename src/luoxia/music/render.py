"""Rendering a Piece: audio through FluidSynth and a General MIDI SoundFont (Debian's `fluidsynth`
and `fluid-soundfont-gm`), or a small NumPy synthesiser where those are absent; and a piano roll.

    samples, engine = render_audio(piece)      # float32 (N,) in [-1, 1] at 22050 Hz; "fluidsynth" or "numpy"
    image = piano_roll(piece)                  # uint8 (H, W, 3), one colour per voice, bar lines
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from luoxia.core.errors import InvalidParameterError
from luoxia.music.score import Piece, midi_bytes

SAMPLE_RATE = 22050
ENGINES = ("auto", "fluidsynth", "numpy")
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/default.sf2")
VOICE_COLOURS = np.array([[214, 39, 40], [44, 160, 44], [31, 119, 180], [148, 103, 189]], dtype=np.uint8)


def soundfont() -> Path | None:
    """$LUOXIA_SOUNDFONT, else the first General MIDI SoundFont Debian installs."""
    for candidate in (os.environ.get("LUOXIA_SOUNDFONT", ""), *SOUNDFONTS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and soundfont() is not None


def render_fluidsynth(piece: Piece, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Render with the fluidsynth program (fast, offline, no audio device)."""
    with tempfile.TemporaryDirectory(prefix="luoxia-music-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi_bytes(piece))
        cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-F", str(wav), str(soundfont()),
               str(mid)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        with wave.open(str(wav), "rb") as w:
            channels, width = w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    if width != 2:
        raise RuntimeError(f"fluidsynth wrote {8 * width}-bit samples, expected 16-bit")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels).mean(axis=1)


def render_numpy(piece: Piece, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Additive synthesis: each note three harmonics under an attack-decay-sustain-release envelope."""
    seconds_per_tick = 60.0 / piece.tempo / 4
    release = 0.08
    total = int((piece.end * seconds_per_tick + release + 0.2) * sample_rate) + 1
    out = np.zeros(total, dtype=np.float64)
    for n in piece.notes:
        start = int(n.start * seconds_per_tick * sample_rate)
        held = n.duration * seconds_per_tick
        t = np.arange(int((held + release) * sample_rate)) / sample_rate
        f = 440.0 * 2 ** ((n.pitch - 69) / 12)
        tone = sum(a * np.sin(2 * np.pi * f * k * t) for k, a in ((1, 1.0), (2, 0.4), (3, 0.2)))
        # attack 20 ms, decay to 70 % over 100 ms, hold, then a linear release
        env = np.minimum(t / 0.02, 1.0) * (0.7 + 0.3 * np.exp(-np.maximum(t - 0.02, 0) / 0.1))
        env *= np.clip((held + release - t) / release, 0.0, 1.0)
        out[start:start + len(t)] += tone * env * (n.velocity / 127)
    peak = np.abs(out).max()
    return (out / peak * 0.8 if peak > 0 else out).astype(np.float32)


def render_audio(piece: Piece, engine: str = "auto", sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, str]:
    """(samples, engine used); "auto" takes FluidSynth when it and a SoundFont are installed."""
    if engine not in ENGINES:
        raise InvalidParameterError(f"unknown audio engine {engine!r}; use one of {', '.join(ENGINES)}")
    if engine == "fluidsynth" and not fluidsynth_available():
        raise InvalidParameterError("fluidsynth or a General MIDI SoundFont is missing; install Debian's "
                                    "`fluidsynth fluid-soundfont-gm` (make setup-test) or use --audio numpy")
    if engine != "numpy" and fluidsynth_available():
        try:
            return render_fluidsynth(piece, sample_rate), "fluidsynth"
        except (OSError, subprocess.SubprocessError, RuntimeError, wave.Error):
            if engine == "fluidsynth":
                raise
    return render_numpy(piece, sample_rate), "numpy"


def piano_roll(piece: Piece, px: int = 4, min_height: int = 256) -> np.ndarray:
    """(H, W, 3) uint8: time left to right (px per 16th), pitch bottom to top, white background,
    thin grey bar lines, each voice in its colour."""
    roll = piece.roll()  # (128, T) voice + 1 or 0
    if not roll.any():
        raise InvalidParameterError("the piece has no notes to draw")
    rows = np.flatnonzero(roll.any(axis=1))
    lo, hi = max(rows[0] - 2, 0), min(rows[-1] + 3, 128)
    part = roll[lo:hi][::-1]  # (P, T), highest pitch on top
    row_px = max(px, -(-min_height // len(part)))
    image = np.full((*part.shape, 3), 255, dtype=np.uint8)
    image[:, ::piece.bar_ticks] = 200
    for v in range(4):
        image[part == v + 1] = VOICE_COLOURS[v]
    return np.repeat(np.repeat(image, row_px, axis=0), px, axis=1)
