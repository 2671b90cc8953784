"""The moving-shapes world and the motion-adherence measure: ground truth passes, static or wrong clips fail."""

from __future__ import annotations

import numpy as np
import pytest

from luoxia.eval.video import adherence, check_motion, consistency, eval_prompts, flicker, fvd_style
from luoxia.video import world


@pytest.mark.parametrize("motion", world.MOTIONS)
def test_ground_truth_passes_its_caption(motion):
    clip = world.make_clip("triangle", "purple", motion, frames=8, size=32, rng=np.random.default_rng(3))
    assert clip.frames.shape == (8, 32, 32, 3) and clip.frames.dtype == np.uint8
    assert world.parse_motion(clip.caption).motion == motion
    assert check_motion(clip.caption, clip.frames).all


def test_trajectory_goes_the_captioned_way():
    rng = np.random.default_rng(0)
    for motion, (dx, dy) in world.MOVES.items():
        track = world.trajectory(motion, 8, rng)
        assert (track[-1, 0] - track[0, 0]) * dx + (track[-1, 1] - track[0, 1]) * dy > 0.4
    assert world.trajectory("grows", 8, rng)[-1, 2] > 2 * world.trajectory("grows", 8, rng)[0, 2]


def test_static_reversed_and_wrong_colour_clips_fail():
    truth = eval_prompts(24, motions=("right", "left", "down", "up", "grows", "shrinks"))
    captions = [c.caption for c in truth]
    real = np.stack([c.frames for c in truth])
    assert adherence(captions, real)["all"] == 1.0
    assert adherence(captions, np.repeat(real[:, :1], 8, axis=1))["all"] == 0.0  # a still image does not move
    assert adherence(captions, real[:, ::-1])["motion"] == 0.0  # every motion here runs the wrong way backwards
    clip = world.make_clip("circle", "red", "right")
    assert not check_motion("a blue circle moves from left to right", clip.frames).all
    assert not check_motion("a red square moves from left to right", clip.frames).all
    assert not check_motion("a red circle moves from top to bottom", clip.frames).all
    blank = np.full((8, 32, 32, 3), world.BACKGROUND, np.uint8)
    assert not check_motion(clip.caption, blank).present


def test_parse_motion_phrasings():
    assert world.parse_motion("A Red circle moves to the right") == world.MotionQuery("circle", "red", "right")
    assert world.parse_motion("a green triangle falls").motion == "down"
    assert world.parse_motion("a blue square turns yellow") == world.MotionQuery("square", "blue", "turns", "yellow")
    assert world.parse_motion("a white circle").motion is None


def test_consistency_flicker_and_fvd_style():
    truth = eval_prompts(8, motions=("right", "grows"))
    real = np.stack([c.frames for c in truth])
    assert consistency(real) > 0.95
    assert flicker(real, real) == pytest.approx(1.0)
    noisy = np.clip(real.astype(int) + np.random.default_rng(0).integers(-60, 60, real.shape), 0, 255).astype(np.uint8)
    assert consistency(noisy) < consistency(real)
    assert flicker(noisy, real) > 3
    other = np.stack([c.frames for c in eval_prompts(8, motions=("right", "grows"), seed=5)])
    assert fvd_style(real, other) < fvd_style(real, noisy)


def test_every_caption_variant_parses_to_its_motion():
    for motion in world.MOTIONS:
        for variant in range(len(world.VARIANTS[motion]) + 1):
            caption = world.caption_of("square", "green", motion, "red", variant)
            assert world.parse_motion(caption).motion == motion, caption
    from luoxia.video.data import moving_shapes_dataset

    plain, varied = moving_shapes_dataset(40, variants=0.0), moving_shapes_dataset(40, variants=1.0)
    assert np.array_equal(plain.clips, varied.clips)  # the phrasing has its own random stream
    assert all("from" not in c for c in varied.captions) and sum("from" in c for c in plain.captions) > 10
