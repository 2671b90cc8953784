"""Editing operations on small synthetic clips."""

from __future__ import annotations

import numpy as np
import pytest
from video_fixtures import gradient_clip

from luoxia.core.errors import InvalidParameterError
from luoxia.video import edit


def test_trim_keeps_the_seconds_asked_for():
    clip = gradient_clip(10)
    out = edit.trim(clip, 5.0, start=0.4, end=1.2)  # frames 2..5
    assert len(out) == 4 and out[0, 0, 0, 0] == 40 and out[-1, 0, 0, 0] == 100
    assert len(edit.trim(clip, 5.0, start=1.0)) == 5
    with pytest.raises(InvalidParameterError, match="no frames"):
        edit.trim(clip, 5.0, start=3.0, end=4.0)
    with pytest.raises(InvalidParameterError):
        edit.trim(clip, 5.0, start=1.0, end=0.5)


def test_concat_counts_frames_and_crossfades():
    a, b = gradient_clip(6), gradient_clip(4)
    joined, fps = edit.concat([(a, 4.0), (b, 4.0)])
    assert len(joined) == 10 and fps == 4.0
    faded, _ = edit.concat([(a, 4.0), (b, 4.0)], crossfade=0.5)  # 2 frames blended
    assert len(faded) == 8
    assert a[-1, 0, 0, 0] > faded[5, 0, 0, 0] > b[1, 0, 0, 0]  # between the outgoing and incoming frame
    small = gradient_clip(4, 8, 8)
    mixed, _ = edit.concat([(a, 4.0), (small, 8.0)])  # resized to 16×24, retimed from 8 to 4 fps
    assert mixed.shape == (8, 16, 24, 3)


def test_speed_resize_crop():
    clip = gradient_clip(8)
    fast = edit.speed(clip, 2.0)
    assert len(fast) == 4 and list(fast[:, 0, 0, 0]) == [0, 40, 80, 120]
    assert len(edit.speed(clip, 0.5)) == 16
    assert edit.resize(clip, 12, 10).shape == (8, 10, 12, 3)
    assert edit.crop(clip, 4, 2, 8, 6).shape == (8, 6, 8, 3)
    with pytest.raises(InvalidParameterError, match="does not fit"):
        edit.crop(clip, 20, 0, 8, 6)
    with pytest.raises(InvalidParameterError):
        edit.speed(clip, 0.0)


def test_effects_text_and_smoothing():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    gray = edit.effect(clip, "grayscale")
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 1
    assert np.array_equal(edit.effect(clip, "invert"), 255 - clip)
    assert np.array_equal(edit.effect(clip, "sepia", strength=0.0), clip)
    for name in edit.EFFECTS:
        assert edit.effect(clip, name).shape == clip.shape
    with pytest.raises(InvalidParameterError, match="unknown effect"):
        edit.effect(clip, "vhs")
    plain = np.zeros((4, 48, 64, 3), np.uint8)
    titled = edit.overlay_text(plain, 2.0, "Hi", start=0.0, end=1.0)
    assert titled[:2].max() > 0 and titled[2:].max() == 0  # only the first second (2 frames) has text
    steps = gradient_clip(4)
    smoothed = edit.smooth(steps, 0.5)
    assert smoothed[0, 0, 0, 0] == 0 and smoothed[1, 0, 0, 0] == 10  # halfway to the previous frame
    assert np.abs(np.diff(smoothed.astype(int), axis=0)).sum() < np.abs(np.diff(steps.astype(int), axis=0)).sum()
