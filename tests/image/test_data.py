"""The shapes world, its captions and detector; digits; image folders with bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from luoxia.core.errors import UserFileError
from luoxia.image import shapes as world
from luoxia.image.datasets import digits_dataset, folder_dataset, shapes_dataset, to_tensor, to_uint8
from luoxia.image.detect import adherence, check, detect


def test_caption_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = world.random_scene(rng)
        queries = world.parse_caption(world.caption(scene))
        assert queries == [world.ShapeQuery(s.kind, s.colour, s.size, s.cell) for s in scene]
    assert world.parse_caption("A big Blue square, top-right corner") == [
        world.ShapeQuery("square", "blue", "large", "top right")]
    assert world.parse_caption("two red circles in the middle")[0].cell == "center"


@pytest.mark.parametrize("size", [32, 64])
def test_detector_is_exact_on_ground_truth_renders(size):
    rng = np.random.default_rng(size)
    for _ in range(300):
        scene = world.random_scene(rng)
        found = detect(world.render(scene, size))
        assert sorted((d.kind, d.colour, d.size, d.cell) for d in found) == \
            sorted((s.kind, s.colour, s.size, s.cell) for s in scene)


def test_detector_tolerates_noise_and_sees_wrong_answers():
    rng = np.random.default_rng(1)
    scenes = [world.random_scene(rng, 1) for _ in range(100)]
    prompts = [world.caption(s) for s in scenes]
    noisy = np.stack([np.clip(world.render(s) + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
                      for s in scenes])
    assert adherence(prompts, noisy)["all"] >= 0.97
    # the same images against shuffled captions mostly fail; an empty image fails every check
    assert adherence(prompts[1:] + prompts[:1], noisy)["all"] < 0.1
    empty = np.full((32, 32, 3), world.BACKGROUND, np.uint8)
    assert not check("a red circle", empty).all and detect(empty) == []
    moved = world.Shape("circle", "red", "small", "top left", 0.83, 0.83)
    result = check("a small red circle at the top left", world.render([moved]))
    assert result.colour and result.kind and not result.cell and not result.all


def test_shapes_dataset_is_seeded_and_labelled():
    a, b = shapes_dataset(50, seed=3), shapes_dataset(50, seed=3)
    assert np.array_equal(a.images, b.images) and a.captions == b.captions
    assert a.images.shape == (50, 32, 32, 3) and a.images.dtype == np.uint8
    assert sum(len(layout) == 1 for layout in a.layouts) > 10
    x = to_tensor(a.images)
    assert x.shape == (50, 3, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert np.array_equal(to_uint8(x), a.images)


def test_digits_dataset():
    d = digits_dataset(16)
    assert d.images.shape == (1797, 16, 16, 1) and d.labels[:3].tolist() == [0, 1, 2]
    assert d.class_names == [str(k) for k in range(10)] and d.captions[3] == "a handwritten digit 3"


def test_folder_dataset_skips_bad_files_and_reads_captions(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40 + i * 10, 70, 3), dtype=np.uint8)).save(tmp_path / f"a{i}.png")
    Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "b.jpg")
    (tmp_path / "a0.txt").write_text("a noisy  picture\n")
    (tmp_path / "caps.csv").write_text("file,caption\nb.jpg,a small jpeg\n")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01")
    d = folder_dataset(tmp_path, size=16)
    assert len(d) == 4 and d.images.shape == (4, 16, 16, 3)
    assert d.skipped == {"unreadable": 1, "not an image": 1}
    assert d.captions == ["a noisy picture", "", "", "a small jpeg"]
    assert d.labels is None


def test_folder_dataset_classes_and_errors(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        Image.new("L", (9, 9), 200).save(tmp_path / name / "x.png")
    d = folder_dataset(tmp_path, size=8, channels=1)
    assert d.class_names == ["cats", "dogs"] and d.labels.tolist() == [0, 1] and d.channels == 1
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "junk.png").write_text("junk")
    with pytest.raises(UserFileError, match="no readable images"):
        folder_dataset(tmp_path / "empty")
    with pytest.raises(UserFileError, match="does not exist"):
        folder_dataset(tmp_path / "missing")
