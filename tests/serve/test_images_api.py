"""`/v1/images/generations` through the openai client: labelled PNGs that `luoxia inspect` verifies."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from serve_helpers import API_KEY

openai = pytest.importorskip("openai")


def test_images_come_back_labelled_and_reproducible(image_server, tmp_path):
    from luoxia.safety.inspect import inspect

    running, images = image_server
    client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    assert images.name in [m.id for m in client.models.list().data]
    side = images.model.size * 2
    reply = client.images.generate(model=images.name, prompt="a seven", n=2, size=f"{side}x{side}",
                                   extra_body={"steps": 3, "seed": 5})
    assert len(reply.data) == 2
    for i, item in enumerate(reply.data):
        png = base64.b64decode(item.b64_json)
        assert Image.open(io.BytesIO(png)).size == (side, side)
        path = tmp_path / f"{i}.png"
        path.write_bytes(png)
        report = inspect(path)
        assert report.status == "labelled", report.problems
        assert item.model_extra["provenance"]["seed"] == 5
        assert item.model_extra["provenance"]["params"]["label"] == "7"
    again = client.images.generate(model=images.name, prompt="a seven", n=2, size=f"{side}x{side}",
                                   extra_body={"steps": 3, "seed": 5})
    pixels = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))).tobytes() for d in (reply.data[0], again.data[0])]
    assert pixels[0] == pixels[1]


def test_image_errors_are_400(image_server):
    running, images = image_server
    client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)
    for kwargs, words in [({"size": "100x50"}, "size"), ({"n": 99}, "n"),
                          ({"extra_body": {"guidance": -1}}, "guidance"),
                          ({"prompt": "a cat"}, "names none of this model's classes")]:
        with pytest.raises(openai.BadRequestError) as e:
            client.images.generate(**{"model": images.name, "prompt": "a seven", "extra_body": {"steps": 2},
                                      **kwargs})
        assert words in e.value.body["message"], e.value.body
