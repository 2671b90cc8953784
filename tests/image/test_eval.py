"""FID and KID on known cases, the digit classifier, and the shipped feature network."""

from __future__ import annotations

import numpy as np
import pytest

from luoxia.eval.image import DigitClassifier, fid, kid


def test_fid_known_cases():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 8))
    assert abs(fid(a, a)) < 1e-6
    # Gaussians N(μ, diag σ²): FID = ‖μ_a − μ_b‖² + Σ (σ_a − σ_b)²
    b = rng.normal(loc=0.5, scale=2.0, size=(4000, 8))
    expected = 8 * 0.5 ** 2 + 8 * (1.0 - 2.0) ** 2
    assert fid(a, b) == pytest.approx(expected, rel=0.06)
    assert fid(a, rng.normal(size=(4000, 8))) < 0.05
    # equals the textbook formula with a general matrix square root (pytorch-fid's way)
    from scipy import linalg

    c, d = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)), rng.normal(size=(300, 6)) + 1
    s_c, s_d = np.cov(c, rowvar=False), np.cov(d, rowvar=False)
    reference = ((c.mean(0) - d.mean(0)) ** 2).sum() + np.trace(s_c + s_d - 2 * linalg.sqrtm(s_c @ s_d).real)
    assert fid(c, d) == pytest.approx(reference, rel=1e-6)


def test_kid_known_cases():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(600, 16))
    same, _ = kid(a, rng.normal(size=(600, 16)))
    shifted, _ = kid(a, rng.normal(loc=1.0, size=(600, 16)))
    assert abs(same) < 0.01 and shifted > 0.5
    assert abs(kid(a, a)[0]) < 0.05  # ~0: the subsets of the two sides overlap by chance


def test_digit_classifier_on_upscaled_digits():
    from luoxia.image.datasets import digits_dataset

    d = digits_dataset(32)
    pred = DigitClassifier().predict(d.images)
    assert (pred == d.labels).mean() > 0.98
    wrong = np.roll(d.labels, 1)
    assert (pred == wrong).mean() < 0.2


def test_shipped_feature_net_tells_shapes_from_digits():
    from luoxia.eval.image_features import WEIGHTS, load_feature_net
    from luoxia.image.datasets import digits_dataset, shapes_dataset

    if not (WEIGHTS / "model.safetensors").is_file():
        pytest.skip("feature network weights not built yet")
    net = load_feature_net()
    s1, s2 = net.features(shapes_dataset(300, seed=11).images), net.features(shapes_dataset(300, seed=12).images)
    digits = net.features(digits_dataset(32).images[:300])
    near, far = fid(s1, s2), fid(s1, digits)
    assert near * 20 < far
    assert kid(s1, s2)[0] * 20 < kid(s1, digits)[0]
    # and it sees the usual failures of generators: noise and blur
    from PIL import Image, ImageFilter

    images = shapes_dataset(300, seed=12).images
    noisy = np.clip(images + np.random.default_rng(0).normal(0, 15, images.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([np.asarray(Image.fromarray(i).filter(ImageFilter.GaussianBlur(1.0))) for i in images])
    assert fid(s1, net.features(noisy)) > 10 * near and fid(s1, net.features(blurred)) > 10 * near
