"""MAUVE: a set against itself is 1, against a different one clearly lower; the frontier equals mauve-text's."""

from __future__ import annotations

import numpy as np
import pytest

from luoxia.eval.mauve import area, compute_mauve, divergence_curve


def test_mauve_of_a_set_against_itself_is_one_and_against_another_lower():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(200, 16))
    same_distribution = rng.normal(size=(200, 16))
    shifted = rng.normal(loc=0.6, size=(200, 16))
    assert compute_mauve(p, p).mauve == pytest.approx(1.0)
    assert compute_mauve(p, same_distribution).mauve > 0.85
    assert compute_mauve(p, shifted).mauve < 0.3


def test_divergence_frontier_equals_mauve_text():
    mauve = pytest.importorskip("mauve.compute_mauve")
    rng = np.random.default_rng(1)
    weights = np.linspace(1e-6, 1 - 1e-6, 25)
    for p, q in [(rng.dirichlet(np.ones(8)), rng.dirichlet(np.ones(8))),
                 (np.array([0.5, 0.5, 0, 0]), np.array([0.25, 0.25, 0.25, 0.25]))]:
        ours = divergence_curve(p, q, weights, 5)
        theirs = mauve.get_divergence_curve_for_multinomials(p, q, weights, 5)
        np.testing.assert_allclose(ours, theirs)
        x, y = theirs.T
        i, j = np.argsort(x), np.argsort(y)
        expected = 0.5 * (mauve.compute_area_under_curve(x[i], y[i]) + mauve.compute_area_under_curve(y[j], x[j]))
        assert area(ours) == pytest.approx(expected)
