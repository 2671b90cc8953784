"""`luoxia video`, `luoxia video-edit`, `luoxia train video` and `luoxia eval video` end to end; bad input is
one line on stderr and exit status 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from luoxia.video.io import read_video


@pytest.mark.slow
def test_embedded_model_writes_a_labelled_mp4_that_edits_work_on(tmp_path, luoxia_cli):
    out = tmp_path / "out.mp4"
    run = luoxia_cli("video", "a red circle moves from left to right", "--frames", "4", "--fps", "2", "--steps", "2",
                     "--seed", "0", "-o", out, "--json")
    assert run.code == 0, run.err
    record = json.loads(run.out)
    assert record["provenance"]["params"]["mode"] == "txt2video" and record["provenance"]["model"] == "moving-shapes"
    frames, fps = read_video(out)
    assert frames.shape == (4, 128, 128, 3) and fps == 2
    assert luoxia_cli("inspect", out).code == 0
    trimmed = tmp_path / "trim.gif"
    assert luoxia_cli("video-edit", "trim", out, "--start", "0.5", "--end", "1.5", "-o", trimmed).code == 0
    assert len(read_video(trimmed)[0]) == 2
    joined = tmp_path / "joined.webp"
    assert luoxia_cli("video-edit", "concat", out, out, "--crossfade", "0.5", "-o", joined).code == 0
    assert len(read_video(joined)[0]) == 7
    assert luoxia_cli("inspect", joined).code == 0


def test_video_edit_operations(tmp_path, luoxia_cli):
    from luoxia.core.artifact import Artifact, Video
    from luoxia.core.provenance import Provenance

    clip = np.zeros((6, 32, 48, 3), np.uint8)
    for t in range(6):  # a square moving right, so no two frames are alike
        clip[t, 8:24, 4 * t:4 * t + 16] = (200, 30, 30)
    src = Artifact("video", Video(clip, 6), Provenance(model="test")).save(tmp_path / "src.mp4")
    cases = {"crop": (["--x", "4", "--y", "2", "--width", "16", "--height", "12"], (6, 12, 16)),
             "resize": (["--width", "24", "--height", "16"], (6, 16, 24)),
             "speed": (["--factor", "2"], (3, 32, 48)),
             "effect": (["--name", "grayscale"], (6, 32, 48)),
             "text": (["--text", "hello", "--end", "0.5"], (6, 32, 48))}
    for op, (flags, shape) in cases.items():
        out = tmp_path / f"{op}.gif"
        run = luoxia_cli("video-edit", op, src, *flags, "-o", out)
        assert run.code == 0, (op, run.err)
        assert read_video(out)[0].shape[:3] == shape, op
    gray = read_video(tmp_path / "effect.gif")[0][3]
    assert np.abs(gray[..., 0].astype(int) - gray[..., 1]).max() <= 8


def test_train_and_eval_tiny_models(tmp_path, luoxia_cli, tiny_video_model):
    run_dir = tmp_path / "run"
    run = luoxia_cli("train", "video", "--out", run_dir, "--init", "none", "--preset", "tiny", "--size", "16",
                     "--frames", "4", "--n", "4", "--steps", "1", "--batch-size", "1", "--motions", "right,left")
    assert run.code == 0, run.err
    assert json.loads(run.out)["finished"] and (run_dir / "model.safetensors").is_file()
    report = tmp_path / "report"
    run = luoxia_cli("eval", "video", "--model", tiny_video_model, "-n", "4", "--steps", "1", "-o", report)
    assert run.code == 0, run.err
    result = json.loads((report / "results.json").read_text())
    assert 0 <= result["adherence"]["all"] <= 1 and result["fvd_style"] > 0 and result["n"] == 4
    assert set(result["adherence_by_motion"]) == {"right", "left"}
    assert (report / "samples.gif").is_file() and "motion adherence" in run.out


def test_bad_input_is_one_line(tmp_path, luoxia_cli, tiny_video_model):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    luoxia_cli("video-edit", "trim", bad, "-o", tmp_path / "x.mp4").assert_user_error("bad.mp4", "not a readable")
    luoxia_cli("video-edit", "trim", tmp_path / "none.mp4", "-o", tmp_path / "x.mp4").assert_user_error(
        "does not exist")
    luoxia_cli("video", "a red circle", "--fps", "0", "-o", tmp_path / "x.mp4").assert_user_error("fps")
    luoxia_cli("video", "a red circle", "--frames", "1", "-o", tmp_path / "x.mp4").assert_user_error("frames")
    luoxia_cli("video", "a red circle", "-o", tmp_path / "x.avi").assert_user_error(".avi")
    luoxia_cli("video", "-o", tmp_path / "x.mp4").assert_user_error("prompt")
    luoxia_cli("video", "x", "--model", tmp_path / "nowhere", "-o", tmp_path / "x.mp4").assert_user_error("nowhere")
    src = tmp_path / "src.gif"
    from luoxia.core.artifact import Artifact, Video
    from luoxia.core.provenance import Provenance

    Artifact("video", Video(np.zeros((4, 16, 16, 3), np.uint8), 4), Provenance(model="t")).save(src)
    luoxia_cli("video-edit", "trim", src, "--start", "5", "--end", "6", "-o",
               tmp_path / "x.mp4").assert_user_error("no frames")
    luoxia_cli("video-edit", "speed", src, "--factor", "0", "-o", tmp_path / "x.mp4").assert_user_error("speed")
    luoxia_cli("video-edit", "crop", src, "--width", "99", "--height", "4", "-o",
               tmp_path / "x.mp4").assert_user_error("does not fit")
    luoxia_cli("video", "x", "--model", tiny_video_model, "--first-frame", tmp_path / "missing.png", "--steps", "1",
               "-o", tmp_path / "x.mp4").assert_user_error("missing.png")
