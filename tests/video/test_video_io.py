"""Reading videos, labelled MP4 / GIF / WebP read back by `luoxia inspect`, and bad input as one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from video_fixtures import gradient_clip

from luoxia.core.artifact import Artifact, Video
from luoxia.core.errors import CorruptFileError, InvalidParameterError, UserFileError
from luoxia.core.provenance import Provenance
from luoxia.safety.labels import read
from luoxia.video import io
from luoxia.video.world import make_clip


def _clip() -> np.ndarray:
    return make_clip("circle", "red", "right", frames=12, size=32).frames.repeat(4, 1).repeat(4, 2)  # 128×128


@pytest.mark.parametrize("ext", ["mp4", "gif", "webp"])
def test_saved_video_is_labelled_and_reads_back(tmp_path, ext, luoxia_cli):
    path = Artifact("video", Video(_clip(), 6), Provenance(model="test", prompt="a red circle")).save(
        tmp_path / f"clip.{ext}")
    frames, fps = io.read_video(path)
    assert frames.shape == (12, 128, 128, 3)
    assert fps == pytest.approx(6, rel=0.05)
    found = read(path)
    assert found.label is not None and found.visible is True
    assert found.provenance["prompt"] == "a red circle"
    run = luoxia_cli("inspect", path)
    assert run.code == 0 and "labelled" in run.out


@pytest.mark.parametrize("ext", ["gif", "webp"])
def test_changed_animation_frames_break_the_signature(tmp_path, ext, luoxia_cli):
    path = Artifact("video", Video(_clip(), 6), Provenance(model="test")).save(tmp_path / f"clip.{ext}")
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        info = dict(im.info)
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
    frames[5] = Image.fromarray(255 - np.asarray(frames[5]))  # tamper with one frame, keep the metadata
    extra = {"comment": info["comment"]} if ext == "gif" else {"xmp": info["xmp"], "lossless": True}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=166, **extra)
    assert luoxia_cli("inspect", path).code != 0


def test_unreadable_missing_and_empty_videos(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    with pytest.raises(CorruptFileError, match="bad.mp4"):
        io.read_video(bad)
    with pytest.raises(UserFileError, match="does not exist"):
        io.read_video(tmp_path / "missing.mp4")
    with pytest.raises(InvalidParameterError, match="zero frames"):
        io.check_clip(np.zeros((0, 8, 8, 3), np.uint8), 8)
    with pytest.raises(InvalidParameterError, match="fps"):
        io.check_clip(gradient_clip(2), 0)
    with pytest.raises(InvalidParameterError, match="fps"):
        io.check_fps(-3)


def test_a_clip_too_long_for_memory_is_refused(tmp_path, monkeypatch):
    path = Artifact("video", Video(gradient_clip(8, 32, 32), 8), Provenance(model="test")).save(tmp_path / "c.mp4")
    monkeypatch.setattr(io, "MAX_VIDEO_BYTES", 32 * 32 * 3 * 4)  # room for 4 frames
    with pytest.raises(io.ClipTooLongError, match="trim it or read fewer frames"):
        io.read_video(path)
    assert len(io.read_video(path, max_frames=3)[0]) == 3


def test_folder_data_skips_and_counts_unreadable_files(tmp_path):
    from luoxia.video.data import folder_dataset

    for i, motion in enumerate(["right", "left"]):
        frames = make_clip("square", "blue", motion, frames=8, size=32).frames
        Artifact("video", Video(frames, 8), Provenance(model="test")).save(tmp_path / f"clip{i}.mp4")
        (tmp_path / f"clip{i}.txt").write_text(f"a blue square moves {motion}")
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    Artifact("video", Video(gradient_clip(3, 32, 32), 8), Provenance(model="test")).save(tmp_path / "short.gif")
    data = folder_dataset(tmp_path, frames=8, size=16)
    assert data.clips.shape == (2, 8, 16, 16, 3)
    assert data.captions == ["a blue square moves right", "a blue square moves left"]
    assert data.skipped == {"unreadable": 1, "too short": 1}
