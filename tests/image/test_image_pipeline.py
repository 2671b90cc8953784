"""`luoxia image` end to end: labelled PNGs, img2img, inpainting, and one-line errors for bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from luoxia.cli.main import main
from luoxia.core.errors import InvalidParameterError
from luoxia.image.pipeline import ImageModel


def run(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("luoxia: error: ") and "Traceback" not in err, err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_cli_writes_a_labelled_grid_and_separate_files(capsys, tmp_path, tiny_text_model):
    out = tmp_path / "grid.png"
    code, stdout, err = run(capsys, "image", "a small red circle at the top left", "--model", tiny_text_model,
                            "-n", "4", "--steps", "3", "--guidance", "3", "--seed", "0", "-o", out)
    assert code == 0, err
    assert stdout.strip() == str(out) and "AI-generated" in err and "seed 0" in err
    grid = Image.open(out)
    assert grid.size == (2 * (128 + 2) + 2,) * 2  # 2×2 grid of 32 px images enlarged 4×, 2 px padding
    code, stdout, _ = run(capsys, "inspect", "--json", out)
    record = json.loads(stdout)
    assert code == 0 and record["status"] == "labelled"
    prov = record["provenance"]
    assert prov["prompt"] == "a small red circle at the top left" and prov["seed"] == 0
    assert prov["params"]["steps"] == 3 and prov["params"]["guidance"] == 3.0

    code, stdout, _ = run(capsys, "image", "a blue square", "--model", tiny_text_model, "-n", "3", "--steps", "2",
                          "--seed", "1", "--separate", "--scale", "1", "-o", tmp_path / "one.png")
    files = stdout.split()
    assert code == 0 and [Path(f).name for f in files] == ["one_000.png", "one_001.png", "one_002.png"]
    assert all(main(["inspect", f]) == 0 for f in files)
    assert Image.open(files[0]).size == (32, 32)


def test_same_seed_same_images_and_guidance_matters(tiny_text_model):
    model = ImageModel.load(str(tiny_text_model))
    a = model.generate("a red circle", n=2, steps=3, seed=5).images
    b = model.generate("a red circle", n=2, steps=3, seed=5).images
    c = model.generate("a red circle", n=2, steps=3, seed=6).images
    d = model.generate("a red circle", n=2, steps=3, seed=5, guidance=0.0).images
    assert np.array_equal(a, b) and not np.array_equal(a, c) and not np.array_equal(a, d)


def test_class_model_reads_the_class_from_prompt_or_label(tiny_class_model):
    model = ImageModel.load(str(tiny_class_model))
    assert model.label_of("a handwritten seven", None) == 7 and model.label_of(None, "3") == 3
    r = model.generate("draw a 4", n=2, steps=2, seed=0)
    assert r.images.shape == (2, 32, 32, 1) and r.provenance.params["label"] == "4"
    with pytest.raises(InvalidParameterError, match="names none"):
        model.generate("a cat", steps=2)
    with pytest.raises(InvalidParameterError, match="not one of"):
        model.generate(label="12", steps=2)


def test_img2img_and_inpainting(tmp_path, tiny_text_model):
    model = ImageModel.load(str(tiny_text_model))
    rng = np.random.default_rng(0)
    init = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)  # any size: resized and centre-cropped
    keep = model.generate("a red circle", init=Image.fromarray(init), strength=0.0, steps=10, seed=0)
    expected = model._image_tensor(Image.fromarray(init), "init", "RGB")
    from luoxia.image.datasets import to_uint8

    assert np.array_equal(keep.images[0], to_uint8(expected)[0])
    weak = model.generate("a red circle", init=Image.fromarray(init), strength=0.2, steps=10, seed=0).images[0]
    strong = model.generate("a red circle", init=Image.fromarray(init), strength=1.0, steps=10, seed=0).images[0]
    dist = lambda img: np.abs(img.astype(int) - keep.images[0].astype(int)).mean()
    assert dist(weak) < dist(strong)

    mask = np.zeros((64, 48), np.uint8)
    mask[:, 24:] = 255  # fill the right half
    filled = model.generate("a red circle", init=Image.fromarray(init), mask=Image.fromarray(mask), steps=4,
                            seed=0, resample=2)
    out = filled.images[0].astype(int)
    ref = keep.images[0].astype(int)
    left, right = slice(0, 14), slice(18, 32)  # away from the resized mask's edge
    assert np.abs(out[:, left] - ref[:, left]).max() <= 1
    assert np.abs(out[:, right] - ref[:, right]).mean() > 10
    assert filled.provenance.params["mode"] == "inpaint"


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width×height (no pixel data needed to read the size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def test_bad_input_is_one_line_errors(capsys, tmp_path, tiny_text_model):
    init = tmp_path / "init.png"
    Image.new("RGB", (40, 40), (9, 9, 9)).save(init)
    small_mask = tmp_path / "mask.png"
    Image.new("L", (20, 20), 255).save(small_mask)
    base = ["image", "a red circle", "--model", tiny_text_model, "--steps", "2", "-o", tmp_path / "x.png"]
    one_line_error(*run(capsys, *base, "--init", init, "--mask", small_mask)[:1],
                   run(capsys, *base, "--init", init, "--mask", small_mask)[2], "mask is 20×20", "40×40")
    code, _, err = run(capsys, *base, "--init", init, "--strength", "1.5")
    one_line_error(code, err, "strength must be in [0, 1]")
    code, _, err = run(capsys, *base, "--guidance", "-0.5")
    one_line_error(code, err, "guidance must be >= 0")
    code, _, err = run(capsys, *base, "--init", _huge_png(tmp_path / "huge.png", 20000, 20000))
    one_line_error(code, err, "huge.png", "shrink it")
    code, _, err = run(capsys, *base, "--init", _huge_png(tmp_path / "big.png", 9000, 9000))
    one_line_error(code, err, "9000×9000", "shrink it")
    (tmp_path / "text.png").write_text("not an image")
    code, _, err = run(capsys, *base, "--init", tmp_path / "text.png")
    one_line_error(code, err, "cannot be read as an image")
    code, _, err = run(capsys, *base, "--mask", small_mask)
    one_line_error(code, err, "--mask needs --init")
    code, _, err = run(capsys, "image", "x", "--model", tmp_path / "nowhere")
    one_line_error(code, err, "no image model")
    code, _, err = run(capsys, "train", "image", "--data", tmp_path / "nowhere", "--out", tmp_path / "r")
    one_line_error(code, err, "does not exist")
    code, _, err = run(capsys, *base, "-n", "5000", "--scale", "32")
    one_line_error(code, err, "5000 images of 1024×1024", "--separate")
    with pytest.raises(InvalidParameterError, match="n must be in"):
        ImageModel.load(str(tiny_text_model)).generate("a", n=10001, steps=1)


def test_train_cli_on_a_folder_with_bad_files(capsys, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(data / f"{i}.png")
    (data / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (data / "readme.pdf").write_bytes(b"%PDF-1.4")
    torch.manual_seed(0)
    code, out, err = run(capsys, "train", "image", "--model", "vae", "--data", data, "--size", "16", "--preset",
                         "tiny", "--steps", "2", "--batch-size", "4", "--out", tmp_path / "run", "--log-every", "1")
    assert code == 0, err
    assert "6 images 16×16×3" in err and "skipped 1 unreadable, 1 not an image" in err
    assert "step 2/2" in err and "ETA" in err and "it/s" in err
    assert json.loads(out)["finished"]
    code, out, err = run(capsys, "image", "--model", tmp_path / "run", "-n", "2", "-o", tmp_path / "v.png")
    assert code == 0, err


def test_vae_reconstruct_and_interpolate_from_the_cli(capsys, tmp_path):
    import dataclasses

    from luoxia.image.formats import save_model
    from luoxia.image.vae import VAE, VAEConfig

    cfg = VAEConfig(channels=8, latent_dim=8)
    torch.manual_seed(0)
    save_model(tmp_path / "vae", VAE(cfg), {"kind": "vae", "network": dataclasses.asdict(cfg), "cond": "none",
                                            "class_names": None, "image_size": 32, "channels": 3})
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(a)
    Image.new("RGB", (50, 40), (30, 30, 200)).save(b)
    code, out, err = run(capsys, "image", "--model", tmp_path / "vae", "--interpolate", a, b, "-n", "5", "--scale",
                         "1", "--nrow", "5", "-o", tmp_path / "path.png")
    assert code == 0, err
    assert Image.open(tmp_path / "path.png").size == (5 * 34 + 2, 36) and main(["inspect", out.strip()]) == 0
    code, _, err = run(capsys, "image", "--model", tmp_path / "vae", "--init", a, "-o", tmp_path / "rec.png")
    assert code == 0 and "reconstruct" in err
    Image.new("L", (32, 32), 255).save(tmp_path / "white.png")
    code, _, err = run(capsys, "image", "--model", tmp_path / "vae", "--init", a, "--mask", tmp_path / "white.png",
                       "-o", tmp_path / "m.png")
    one_line_error(code, err, "--mask needs a diffusion model")
