"""Objective music metrics in the MusPy tradition (Dong et al. 2020), and the generated-vs-chorales report.

Each metric takes a `Piece` (16th-note grid, voices 0..3 = soprano..bass):

    pitch_class_entropy   Shannon entropy (bits) of the pitch-class histogram of the notes; 0..log2(12)
    scale_consistency     largest share of notes inside one major or natural-minor scale; 0..1
    pitch_range           highest minus lowest pitch, in semitones
    polyphony             mean number of sounding pitches over the 16ths where any sounds
    empty_beat_rate       share of quarter-note beats (from the first note's) in which nothing sounds
    groove_consistency    1 - mean Hamming distance of consecutive bars' onset patterns / bar length
    voice_range           share of notes inside their voice's usual range (VOICE_RANGES)

`report(sets, reference)` averages them over named sets of pieces and compares each with the reference;
`evaluate_model` composes pieces in asked keys (and measures key adherence) and re-harmonises the
reference's sopranos.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from luoxia.music.score import TICKS_PER_QUARTER, VOICE_NAMES, Piece

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)
# Usual SATB ranges (MIDI numbers): soprano C4–G5, alto G3–D5, tenor C3–G4, bass E2–C4.
VOICE_RANGES = ((60, 79), (55, 74), (48, 67), (40, 60))
TOLERANCE = 0.10  # the target: generated within 10 % of the chorales


def pitch_class_entropy(piece: Piece) -> float:
    counts = np.bincount([n.pitch % 12 for n in piece.notes], minlength=12).astype(float)
    if not counts.sum():
        return math.nan
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def scale_consistency(piece: Piece) -> float:
    if not piece.notes:
        return math.nan
    classes = np.array([n.pitch % 12 for n in piece.notes])
    best = 0
    for root in range(12):
        for scale in (MAJOR_SCALE, MINOR_SCALE):
            best = max(best, int(np.isin(classes, [(root + s) % 12 for s in scale]).sum()))
    return best / len(classes)


def pitch_range(piece: Piece) -> float:
    if not piece.notes:
        return math.nan
    pitches = [n.pitch for n in piece.notes]
    return float(max(pitches) - min(pitches))


def _sounding(piece: Piece) -> np.ndarray:
    """(128, end) bool: pitch p sounds at 16th t."""
    grid = np.zeros((128, piece.end), dtype=bool)
    for n in piece.notes:
        grid[n.pitch, n.start:n.start + n.duration] = True
    return grid


def polyphony(piece: Piece) -> float:
    counts = _sounding(piece).sum(axis=0)
    counts = counts[counts > 0]
    return float(counts.mean()) if len(counts) else math.nan


def empty_beat_rate(piece: Piece) -> float:
    """Counted from the first note's beat, so a pickup's alignment to the bar adds no empty beats."""
    if not piece.notes:
        return math.nan
    first = min(n.start for n in piece.notes) // TICKS_PER_QUARTER * TICKS_PER_QUARTER
    active = _sounding(piece).any(axis=0)[first:]
    n_beats = -(-len(active) // TICKS_PER_QUARTER)
    if not n_beats:
        return math.nan
    active = np.pad(active, (0, n_beats * TICKS_PER_QUARTER - len(active)))
    return float((~active.reshape(n_beats, TICKS_PER_QUARTER).any(axis=1)).mean())


def groove_consistency(piece: Piece) -> float:
    bar = piece.bar_ticks
    n_bars = piece.n_bars
    if n_bars < 2:
        return math.nan
    onsets = np.zeros((n_bars, bar), dtype=bool)
    for n in piece.notes:
        onsets[n.start // bar, n.start % bar] = True
    hamming = (onsets[1:] != onsets[:-1]).sum(axis=1) / bar
    return float(1 - hamming.mean())


def voice_range(piece: Piece) -> float:
    inside = [lo <= n.pitch <= hi for n in piece.notes for lo, hi in [VOICE_RANGES[n.voice]]]
    return float(np.mean(inside)) if inside else math.nan


METRICS: dict[str, Callable[[Piece], float]] = {
    "pitch_class_entropy": pitch_class_entropy, "scale_consistency": scale_consistency, "pitch_range": pitch_range,
    "polyphony": polyphony, "empty_beat_rate": empty_beat_rate, "groove_consistency": groove_consistency,
    "voice_range": voice_range,
}
TARGETS = ("pitch_class_entropy", "scale_consistency")  # within TOLERANCE of the reference


def summarise(pieces: list[Piece]) -> dict[str, float]:
    """Mean of each metric over the pieces (pieces where a metric is undefined are left out of it)."""
    out = {}
    for name, fn in METRICS.items():
        values = [v for v in (fn(p) for p in pieces) if not math.isnan(v)]
        out[name] = float(np.mean(values)) if values else math.nan
    return out


def report(sets: dict[str, list[Piece]], reference: str, extra: dict | None = None) -> dict:
    """Metrics of each named set of pieces, and whether each set meets the targets against `reference`:
    pitch-class entropy and scale consistency within 10 %, voice range >= 90 %."""
    summary = {name: summarise(pieces) for name, pieces in sets.items()}
    ref = summary[reference]
    checks = {}
    for name, s in summary.items():
        if name == reference:
            continue
        checks[name] = {m: abs(s[m] - ref[m]) <= TOLERANCE * abs(ref[m]) for m in TARGETS}
        checks[name]["voice_range"] = s["voice_range"] >= 0.9
    return {"pieces": {name: len(p) for name, p in sets.items()}, "metrics": summary, "reference": reference,
            "targets_met": checks, **(extra or {})}


def markdown(result: dict) -> str:
    names = list(result["metrics"])
    lines = ["| metric | " + " | ".join(f"{n} (n={result['pieces'][n]})" for n in names) + " |",
             "|---|" + "---:|" * len(names)]
    for metric in METRICS:
        cells = []
        for n in names:
            value = result["metrics"][n][metric]
            ok = result["targets_met"].get(n, {}).get(metric)
            cells.append(f"{value:.3f}" + ("" if ok is None else " ✓" if ok else " ✗"))
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines.append("")
    for key in ("val_loss", "val_perplexity"):
        if key in result:
            lines.append(f"- {key.replace('_', ' ')} on the reference: {result[key]:.4f}")
    if "key_adherence" in result:
        k = result["key_adherence"]
        lines.append(f"- key adherence of the composed pieces (estimated key = asked key): {k['same_key']:.2f}; "
                     f"same key signature (relative keys accepted): {k['same_signature']:.2f}")
    if "voice_range_by_voice" in result:
        for name, by_voice in result["voice_range_by_voice"].items():
            lines.append(f"- voice range, {name}: " + ", ".join(f"{v} {x:.3f}" for v, x in by_voice.items()))
    lines.append("\n✓/✗: pitch-class entropy and scale consistency within 10 % of the reference "
                 f"({result['reference']}); voice range at least 0.90.")
    return "\n".join(lines) + "\n"


def evaluate_model(model, reference: list[Piece], n: int = 20, bars: int = 16, seed: int = 0,
                   params=None, log: Callable[[str], None] = lambda _line: None) -> dict:
    """Compose `n` pieces and harmonise the sopranos of up to `n` reference pieces with `model`
    (a `luoxia.music.pipeline.MusicModel`), and report them beside `reference`, with the model's loss on it."""
    from luoxia.music.keys import ALL_KEYS, estimate_key

    val_loss = model.loss([(p, estimate_key(p)) for p in reference])
    log(f"held-out loss {val_loss:.4f} nats/token over {len(reference)} pieces")
    composed, asked = [], [ALL_KEYS[i % len(ALL_KEYS)] for i in range(n)]  # C major, C# major, ..., then minors
    for i in range(n):
        composed.append(model.generate(bars=bars, key=asked[i], params=params, seed=seed + i))
        log(f"composed {i + 1}/{n}")
    found = [estimate_key(p) for p in composed]
    # Key adherence: the estimated key is the asked one; "same signature" also accepts the relative key
    # (C major / A minor), which pitch-class profiles often cannot tell apart.
    same_key = float(np.mean([f == k for f, k in zip(found, asked)]))
    same_signature = float(np.mean([(f.tonic + 3 * f.minor) % 12 == (k.tonic + 3 * k.minor) % 12
                                    for f, k in zip(found, asked)]))
    harmonised = []
    for i, piece in enumerate(reference[:n]):
        harmonised.append(model.generate(melody=piece, params=params, seed=seed + i))
        log(f"harmonised {i + 1}/{min(n, len(reference))}")
    by_voice = {name: summarise_voices(pieces) for name, pieces in
                (("chorales", reference), ("composed", composed), ("harmonised", harmonised))}
    return report({"chorales": reference, "composed": composed, "harmonised": harmonised}, "chorales",
                  extra={"val_loss": val_loss, "val_perplexity": math.exp(val_loss), "voice_range_by_voice": by_voice,
                         "key_adherence": {"same_key": same_key, "same_signature": same_signature,
                                           "asked": [str(k) for k in asked], "found": [str(f) for f in found]}})


def summarise_voices(pieces: list[Piece]) -> dict[str, float]:
    """Share of each voice's notes inside its range, over all the pieces' notes."""
    out = {}
    for v, name in enumerate(VOICE_NAMES):
        lo, hi = VOICE_RANGES[v]
        inside = [lo <= n.pitch <= hi for p in pieces for n in p.voice(v)]
        out[name] = float(np.mean(inside)) if inside else math.nan
    return out
