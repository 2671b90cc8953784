"""A real server on a free loopback port, over a tiny model with a long context window."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from serve_helpers import API_KEY, start_server


@pytest.fixture(scope="session")
def serve_text(tmp_path_factory, tokenizer_dir):
    from tokenizers import Tokenizer

    from luoxia.text.pipeline import TextModel
    from tiny_models import make_hf_model

    directory = tmp_path_factory.mktemp("serve_model")
    vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size()
    make_hf_model(directory, "llama", vocab, max_position_embeddings=4096)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, directory / name)
    return TextModel.load(str(directory), quant="none")


@pytest.fixture(scope="session")
def server(serve_text):
    from luoxia.serve.app import create_app
    from luoxia.serve.config import ServeConfig

    config = ServeConfig(model=serve_text.name, api_key=API_KEY, max_tokens_limit=4096, max_body_bytes=64 * 1024,
                         batch_window_ms=20)
    running = start_server(create_app(config, serve_text), serve_text)
    yield running
    running.stop()


@pytest.fixture()
def client(server):
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="session")
def image_server(tmp_path_factory, serve_text):
    """A server with a tiny class-conditional (digits-like) diffusion model beside the text model."""
    import torch

    from luoxia.image.formats import save_model
    from luoxia.image.pipeline import ImageModel
    from luoxia.image.schedulers import ScheduleConfig
    from luoxia.image.unet import PRESETS, UNet, UNetConfig
    from luoxia.serve.app import create_app
    from luoxia.serve.config import ServeConfig
    from luoxia.serve.images import ImageService

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("digits_model")
    cfg = UNetConfig(**{**PRESETS["tiny"], "in_channels": 1, "cond": "class", "num_classes": 10})
    save_model(folder, UNet(cfg), {"kind": "ddpm", "network": cfg.to_dict(),
                                   "schedule": dataclasses.asdict(ScheduleConfig()), "cond": "class",
                                   "class_names": [str(i) for i in range(10)], "image_size": cfg.image_size,
                                   "channels": 1, "data": "test"})
    images = ImageService(ImageModel.load(str(folder)))
    running = start_server(create_app(ServeConfig(api_key=API_KEY, allow_unlabelled=True), serve_text, images),
                           serve_text)
    yield running, images
    running.stop()
