"""The networks: UNet conditioning and masking, VAE and GAN pieces, training that resumes bit-exactly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from luoxia.image.gan import Discriminator, GANConfig, Generator, gradient_penalty
from luoxia.image.training import ImageTrainConfig, train
from luoxia.image.unet import PRESETS, UNet, UNetConfig
from luoxia.image.vae import VAE, VAEConfig


@pytest.mark.parametrize("cond,patch", [("none", 1), ("class", 2), ("text", 1), ("text", 2)])
def test_unet_shapes_and_zero_init(cond, patch):
    net = UNet(UNetConfig(**{**PRESETS["tiny"], "cond": cond, "patch": patch}))
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([3, 900])
    kw = {}
    if cond == "class":
        kw = {"labels": torch.tensor([1, 10])}  # 10 = no label
    if cond == "text":
        kw = {"context": torch.randn(2, 5, 384), "context_mask": torch.ones(2, 5, dtype=torch.bool),
              "pooled": torch.randn(2, 384)}
    out = net(x, t, **kw)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0  # the output conv starts at zero


def test_cross_attention_ignores_padding_and_uses_the_caption():
    torch.manual_seed(0)
    net = UNet(UNetConfig(**{**PRESETS["tiny"], "cond": "text"}))
    torch.nn.init.normal_(net.conv_out.weight, 0, 0.1)
    x, t, pooled = torch.randn(1, 3, 32, 32), torch.tensor([500]), torch.randn(1, 384)
    ctx = torch.randn(1, 4, 384)
    base = net(x, t, context=ctx, context_mask=torch.ones(1, 4, dtype=torch.bool), pooled=pooled)
    padded = torch.cat([ctx, 100 * torch.randn(1, 3, 384)], dim=1)
    mask = torch.tensor([[True] * 4 + [False] * 3])
    torch.testing.assert_close(net(x, t, context=padded, context_mask=mask, pooled=pooled), base,
                               rtol=1e-4, atol=1e-5)
    other = net(x, t, context=torch.randn(1, 4, 384), context_mask=torch.ones(1, 4, dtype=torch.bool), pooled=pooled)
    assert (other - base).abs().max() > 1e-3


def test_vae_reconstruct_sample_interpolate():
    torch.manual_seed(0)
    vae = VAE(VAEConfig(channels=8, latent_dim=8, cond="class", num_classes=10)).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    recon, mu, logvar = vae(x, labels=torch.tensor([1, 2]))
    assert recon.shape == x.shape and mu.shape == (2, 8) and recon.abs().max() <= 1
    total, rec, kl = VAE.loss(x, recon, mu, logvar, beta=0.5)
    assert torch.isclose(total, rec + 0.5 * kl) and kl >= 0
    assert vae.sample(3, labels=torch.tensor([0, 1, 2])).shape == (3, 3, 32, 32)
    path = vae.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 3, 32, 32)
    torch.testing.assert_close(path[0], vae.reconstruct(x[:1])[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(path[-1], vae.reconstruct(x[1:])[0], rtol=1e-4, atol=1e-4)


def test_gan_pieces():
    cfg = GANConfig(channels=8, latent_dim=8, cond="text", reg="sn")
    g, d = Generator(cfg), Discriminator(cfg)
    pooled = torch.randn(4, 384)
    fake = g.sample(4, pooled=pooled)
    assert fake.shape == (4, 3, 32, 32) and fake.abs().max() <= 1 and d(fake, pooled=pooled).shape == (4,)
    # spectral norm: after a few power iterations every weight's largest singular value is about 1
    for _ in range(30):
        d(fake, pooled=pooled)
    w = d.body[2].weight.detach().flatten(1)
    assert torch.linalg.matrix_norm(w, ord=2) == pytest.approx(1.0, abs=0.05)

    class Linear(torch.nn.Module):  # D(x) = ⟨w, x⟩: the gradient is w everywhere
        def __init__(self, scale):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1, 3, 4, 4) * scale / 48 ** 0.5)

        def forward(self, x, labels=None, pooled=None):
            return (x * self.w).flatten(1).sum(1)

    real, other = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert gradient_penalty(Linear(1.0), real, other).item() == pytest.approx(0.0, abs=1e-6)
    assert gradient_penalty(Linear(3.0), real, other).item() == pytest.approx(4.0, rel=1e-5)


@pytest.mark.parametrize("model", ["ddpm", "gan", "vae"])
def test_training_resumes_bit_exactly(tmp_path, model):
    common = dict(model=model, data="digits", size=16, preset="tiny", steps=4, batch_size=8, log_every=1,
                  sample_every=100, checkpoint_every=2, seed=3)
    straight = train(ImageTrainConfig(out=str(tmp_path / "a"), **common), log=lambda _: None)
    train(ImageTrainConfig(out=str(tmp_path / "b"), **common), stop_at=2, log=lambda _: None)
    resumed = train(ImageTrainConfig(out=str(tmp_path / "b"), **common), log=lambda _: None)
    assert resumed["finished"] and straight["finished"]
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert config["kind"] == model and config["cond"] == "class" and config["class_names"][3] == "3"
    for f in ("loss.png", "metrics.jsonl", "samples/step_000004.png"):
        assert (tmp_path / "b" / f).is_file(), f
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_int8_model_folder_round_trip(tmp_path):
    from luoxia.image.formats import load_model, save_model

    torch.manual_seed(0)
    cfg = UNetConfig(**{**PRESETS["tiny"], "cond": "class"})
    net = UNet(cfg)
    for p in net.parameters():
        torch.nn.init.normal_(p, 0, 0.1)
    meta = {"kind": "ddpm", "network": cfg.to_dict(), "cond": "class", "image_size": 32, "channels": 3}
    save_model(tmp_path / "q", net, meta, dtype=torch.int8)
    save_model(tmp_path / "f", net, meta)
    size = lambda d: (tmp_path / d / "model.safetensors").stat().st_size
    assert size("q") < 0.35 * size("f")
    back, config = load_model(tmp_path / "q")
    assert config["dtype"] == "int8"
    for (k, a), b in zip(net.state_dict().items(), back.state_dict().values()):
        bound = a.abs().reshape(a.shape[0], -1).amax(1).max() / 254 + 1e-3 if a.ndim >= 2 else 1e-3
        assert (a - b).abs().max() <= bound, k
    x, t, labels = torch.randn(2, 3, 32, 32), torch.tensor([5, 500]), torch.tensor([1, 2])
    torch.testing.assert_close(back(x, t, labels=labels), net(x, t, labels=labels), rtol=0.05, atol=0.05)
