"""The video pipeline with a tiny model: text-to-video, image-to-video keeps the first frame, frame
interpolation keeps both ends; latent interpolation with a tiny image model; training resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from luoxia.core.errors import InvalidParameterError
from luoxia.video.pipeline import VideoModel


def test_generate_is_seeded_and_sized(tiny_video):
    model = tiny_video
    a = model.generate("a red circle moves from left to right", steps=3, seed=1)
    b = model.generate("a red circle moves from left to right", steps=3, seed=1)
    c = model.generate("a red circle moves from left to right", frames=6, steps=3, seed=2, fps=12)
    assert a.frames.shape == (4, 16, 16, 3) and np.array_equal(a.frames, b.frames)
    assert c.frames.shape == (6, 16, 16, 3) and c.fps == 12
    assert a.provenance.params["mode"] == "txt2video" and a.provenance.seed == 1
    with pytest.raises(InvalidParameterError, match="frames"):
        model.generate("x", frames=1)
    with pytest.raises(InvalidParameterError, match="fps"):
        model.generate("x", fps=0)


def test_first_frame_and_both_ends_are_kept(tiny_video):
    model = tiny_video
    first = np.zeros((16, 16, 3), np.uint8)
    first[4:12, 2:8] = (220, 40, 40)
    last = np.zeros((16, 16, 3), np.uint8)
    last[4:12, 8:14] = (50, 90, 235)
    clip = model.generate("a red square", first_frame=first, steps=4, seed=0).frames
    assert np.abs(clip[0].astype(int) - first).max() <= 2  # replaced at every step, exact at the end
    tween = model.between(first, last, frames=5, steps=4).frames
    assert tween.shape[0] == 5
    assert np.abs(tween[0].astype(int) - first).max() <= 2 and np.abs(tween[-1].astype(int) - last).max() <= 2


def test_latent_interpolation_and_restyle_with_an_image_model(tiny_image):
    from luoxia.video.edit import restyle
    from luoxia.video.interpolate import blend_frames, morph_images, morph_prompts

    clip = morph_prompts(tiny_image, "a red circle", "a blue square", frames=5, steps=3)
    assert clip.shape == (5, 16, 16, 3)
    a, b = np.zeros((16, 16, 3), np.uint8), np.full((16, 16, 3), 200, np.uint8)
    assert morph_images(tiny_image, a, b, frames=4, steps=3).shape == (4, 16, 16, 3)
    blend = blend_frames(a, b, 5)
    assert list(blend[:, 0, 0, 0]) == [0, 50, 100, 150, 200]
    frames = np.stack([a, a, b, b])
    sharp = restyle(frames, tiny_image, "a red circle", strength=0.5, smoothing=0.0, steps=2)
    smooth = restyle(frames, tiny_image, "a red circle", strength=0.5, smoothing=0.6, steps=2)
    assert sharp.shape == (4, 16, 16, 3) and np.array_equal(sharp[0], smooth[0])
    jump = lambda x: np.abs(np.diff(x.astype(int), axis=0)).sum()
    assert jump(smooth) < jump(sharp)


def test_training_resumes_to_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    from luoxia.video.training import VideoTrainConfig, train

    base = dict(n=12, frames=4, size=16, init=None, preset="tiny", batch_size=2, sample_every=100,
                checkpoint_every=2, motions=("right", "left"), threads=1, log_every=1)
    quiet = lambda line: None
    whole = train(VideoTrainConfig(out=str(tmp_path / "a"), steps=4, **base), log=quiet)
    train(VideoTrainConfig(out=str(tmp_path / "b"), steps=4, **base), stop_at=2, log=quiet)
    resumed = train(VideoTrainConfig(out=str(tmp_path / "b"), steps=4, **base), log=quiet)
    assert whole["finished"] and resumed["finished"] and whole["loss"] == resumed["loss"]
    wa = load_file(tmp_path / "a" / "checkpoints" / "step_000004" / "model.safetensors")
    wb = load_file(tmp_path / "b" / "checkpoints" / "step_000004" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["format"] == "luoxia-video-model" and config["frames"] == 4
    assert VideoModel.load(str(tmp_path / "a")).generate("a red circle", steps=2, seed=0).frames.shape[0] == 4
