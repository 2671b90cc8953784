"""Video evaluation: motion adherence on the moving-shapes world, temporal consistency, flicker and an
FVD-style distance with the project's own frame features.

    check_motion(caption, frames)    track the object in every frame (`luoxia.image.detect`) and check that
                                     its colour, shape and motion are the caption's → MotionCheck
    consistency(clips)               mean similarity of consecutive frames, 1 − mean |x_{t+1} − x_t| / 255
    flicker(clips, reference)        mean |x_{t+1} − 2 x_t + x_{t−1}| (temporal second difference: jitter that
                                     smooth motion does not make), as a ratio to the reference clips' (1 = as
                                     steady as the ground truth)
    fvd_style(real, fake)            Fréchet distance between clip features: per clip the mean over frames
                                     of the shipped 256-d image features (`luoxia.eval.image_features`) and
                                     the mean absolute change of those features between frames. Same idea as
                                     FVD (Unterthiner et al. 2018), but our network and 32×32 clips: NOT
                                     comparable with published FVD numbers.
    evaluate_model(model, n=96)      all of the above for a video model against ground-truth clips

Motion checks (τ = the clip's own frames, positions as fractions of the side):
    moves   the centre travels ≥ 0.25 along the captioned direction, and at least twice as far as across it
    grows / shrinks   the object's area ends ≥ 1.8× / ≤ 1/1.8× where it started
    bounces the lowest point is ≥ 0.15 below both the first and the last position
    turns   the first half is mostly the first colour, the second half mostly the second
The object must be found in ≥ 75% of frames; colour and shape are the majority over frames.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import numpy as np

from luoxia.core.errors import InvalidParameterError
from luoxia.video import world

MIN_TRAVEL = 0.25
SIZE_RATIO = 1.8
MIN_BOUNCE = 0.15
MIN_PRESENT = 0.75


@dataclasses.dataclass
class MotionCheck:
    all: bool
    present: bool
    colour: bool
    kind: bool
    motion: bool
    track: list[tuple[float, float, float] | None]  # centre x, y and area per frame (None: not found)


def track(frames: np.ndarray) -> list:
    """The largest detected object in each frame (a `luoxia.image.detect.Detection`, or None)."""
    from luoxia.image.detect import detect

    out = []
    for f in frames:
        found = detect(f)
        out.append(found[0] if found else None)
    return out


def _majority(values: list[str]) -> str | None:
    return Counter(values).most_common(1)[0][0] if values else None


def check_motion(caption: str, frames: np.ndarray) -> MotionCheck:
    q = world.parse_motion(caption)
    dets = track(frames)
    seen = [d for d in dets if d is not None]
    present = len(seen) >= MIN_PRESENT * len(frames) and len(seen) >= 2
    path = [None if d is None else (d.cx, d.cy, d.area) for d in dets]
    if not present:
        return MotionCheck(False, False, False, False, False, path)
    kind = q.kind is None or _majority([d.kind for d in seen]) == q.kind
    half = len(dets) // 2
    if q.motion == "turns":
        first = _majority([d.colour for d in dets[:half] if d is not None])
        second = _majority([d.colour for d in dets[half:] if d is not None])
        colour = (q.colour is None or first == q.colour) and (q.to_colour is None or second == q.to_colour)
        motion = first is not None and second is not None and first != second
    else:
        colour = q.colour is None or _majority([d.colour for d in seen]) == q.colour
        motion = _motion_ok(q.motion, seen)
    return MotionCheck(present and colour and kind and motion, present, colour, kind, motion, path)


def _motion_ok(motion: str | None, seen: list) -> bool:
    a, b = seen[0], seen[-1]
    if motion in world.MOVES:
        dx, dy = world.MOVES[motion]
        mx, my = b.cx - a.cx, b.cy - a.cy
        along = mx * dx + my * dy
        across = abs(mx * dy - my * dx)
        return along >= MIN_TRAVEL and along >= 2 * across
    if motion == "grows":
        return b.area >= SIZE_RATIO * a.area
    if motion == "shrinks":
        return b.area * SIZE_RATIO <= a.area
    if motion == "bounces":
        lowest = max(d.cy for d in seen)
        return lowest - a.cy >= MIN_BOUNCE and lowest - b.cy >= MIN_BOUNCE
    return True  # no motion asked for


def adherence(captions: list[str], clips: np.ndarray) -> dict[str, float]:
    """Shares of clips (caption i ↔ clip i) that pass each check."""
    checks = [check_motion(c, v) for c, v in zip(captions, clips)]
    n = max(len(checks), 1)
    return {k: sum(getattr(c, k) for c in checks) / n for k in ("all", "present", "colour", "kind", "motion")}


def consistency(clips: np.ndarray) -> float:
    """Mean similarity of consecutive frames over clips (N, T, H, W, 3): 1 − mean |x_{t+1} − x_t| / 255."""
    x = np.asarray(clips, np.float32)
    return float(1 - np.abs(np.diff(x, axis=1)).mean() / 255)


def second_difference(clips: np.ndarray) -> float:
    x = np.asarray(clips, np.float32)
    if x.shape[1] < 3:
        raise InvalidParameterError("flicker needs clips of at least 3 frames")
    return float(np.abs(x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2]).mean())


def flicker(clips: np.ndarray, reference: np.ndarray) -> float:
    return second_difference(clips) / max(second_difference(reference), 1e-9)


def clip_features(clips: np.ndarray, net=None) -> np.ndarray:
    """(N, 512): mean frame feature and mean absolute feature change between frames, per clip."""
    from luoxia.eval.image_features import load_feature_net

    net = net or load_feature_net()
    n, t = clips.shape[:2]
    feats = net.features(clips.reshape(n * t, *clips.shape[2:])).reshape(n, t, -1)
    return np.concatenate([feats.mean(1), np.abs(np.diff(feats, axis=1)).mean(1)], axis=1)


def fvd_style(real: np.ndarray, fake: np.ndarray, net=None) -> float:
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn

    from luoxia.eval.image import fid

    a, b = clip_features(real, net), clip_features(fake, net)
    with threadpool_limits(1):  # one BLAS thread: 512×512 eigendecompositions are far slower with spinning threads
        return fid(a, b)


def eval_prompts(n: int, motions: tuple[str, ...] = world.MOTIONS, seed: int = 0) -> list[world.Clip]:
    """n ground-truth clips (frames dropped later by the caller if unneeded): motions in turn, random shapes."""
    rng = np.random.default_rng([seed, 17])
    return [world.make_clip(str(rng.choice(world.KINDS)), str(rng.choice(list(world.COLOURS))),
                            motions[i % len(motions)], rng=rng) for i in range(n)]


def evaluate_model(model, n: int = 96, *, frames: int | None = None, steps: int = 50, guidance: float = 3.0,
                   seed: int = 0, motions: tuple[str, ...] | None = None) -> dict:
    """Sample `n` clips of the model for moving-shapes captions and measure them against ground truth."""
    if n < 2:
        raise InvalidParameterError(f"n must be >= 2, got {n}")
    frames = frames or model.frames
    motions = tuple(motions or model.config.get("motions") or world.MOTIONS)
    truth = eval_prompts(n, motions, seed)
    truth = [world.make_clip(c.kind, c.colour, c.motion, frames, model.size, np.random.default_rng([seed, i]),
                             c.to_colour) for i, c in enumerate(truth)]
    captions = [c.caption for c in truth]
    real = np.stack([c.frames for c in truth])
    t0 = time.perf_counter()
    fake = model.sample(captions, frames=frames, steps=steps, guidance=guidance, seed=seed)
    seconds = time.perf_counter() - t0
    per_motion = {}
    for m in motions:
        idx = [i for i, c in enumerate(truth) if c.motion == m]
        per_motion[m] = adherence([captions[i] for i in idx], fake[idx])["all"]
    return {"model": model.name, "n": n, "frames": frames, "steps": steps, "guidance": guidance, "seed": seed,
            "adherence": adherence(captions, fake), "adherence_by_motion": per_motion,
            "ground_truth_adherence": adherence(captions, real)["all"],
            "consistency": consistency(fake), "ground_truth_consistency": consistency(real),
            "flicker_vs_ground_truth": flicker(fake, real), "fvd_style": fvd_style(real, fake),
            "seconds": round(seconds, 1), "clips": fake, "captions": captions}
