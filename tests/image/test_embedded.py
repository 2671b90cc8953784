"""The shipped models, end to end: `luoxia image` with the defaults writes labelled PNGs that follow the prompt."""

from __future__ import annotations

import json

import numpy as np

from luoxia.cli.main import main
from luoxia.eval.image import DigitClassifier
from luoxia.image.detect import adherence
from luoxia.image.pipeline import WEIGHTS, ImageModel


def test_shipped_weights_are_small_safetensors():
    for name in ("shapes", "digits"):
        config = json.loads((WEIGHTS / name / "config.json").read_text())
        size = (WEIGHTS / name / "model.safetensors").stat().st_size
        assert config["format"] == "luoxia-image-model" and config["dtype"] == "int8"
        assert size < 8 * 2**20, (name, size)


def test_luoxia_image_default_model_writes_a_labelled_png(capsys, tmp_path):
    out = tmp_path / "out.png"
    code = main(["image", "a small red circle at the top left", "-n", "4", "--steps", "20", "--seed", "0",
                 "-o", str(out)])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert main(["inspect", "--json", str(out)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "labelled" and record["provenance"]["model"] == "shapes"


def test_shapes_model_follows_one_object_prompts():
    model = ImageModel.load("shapes")
    prompts = ["a small red circle at the top left", "a large blue square in the center",
               "a small yellow triangle at the bottom right", "a large green circle on the left"]
    images, asked = [], []
    for i, p in enumerate(prompts):
        images.append(model.generate(p, n=3, steps=20, seed=i).images)
        asked += [p] * 3
    assert adherence(asked, np.concatenate(images))["all"] >= 0.6


def test_digits_model_draws_the_asked_class():
    model = ImageModel.load("digits")
    images = np.concatenate([model.generate(label=str(k), n=2, steps=20, seed=k).images for k in range(10)])
    predicted = DigitClassifier().predict(images)
    assert (predicted == np.repeat(np.arange(10), 2)).mean() >= 0.8
