"""MAUVE (Pillutla et al., NeurIPS 2021): how close a set of generations is to human text, in (0, 1].

Our own implementation of the `mauve-text` package's `compute_mauve` on features we supply
(all-MiniLM-L6-v2 embeddings), following its steps and defaults, so nothing is downloaded and no
faiss is needed (`mauve-text` clusters with faiss; we use scikit-learn's k-means, so the clusters,
and with them the score, can differ slightly from the package's; the divergence-frontier arithmetic
is the same and is tested equal to the package's):

1. Quantize: L2-normalise the features of P (model text) and Q (human text) together, reduce them
   by PCA to the components that explain 90% of the variance, cluster with k-means into
   k = max(2, round(min(|P|, |Q|) / 10)) buckets; p, q = the histograms of P's and Q's points.
2. Divergence frontier: for mixtures R_λ = λp + (1-λ)q on λ ∈ linspace(1e-6, 1-1e-6, 25), the points
   (exp(-c·KL(q‖R_λ)), exp(-c·KL(p‖R_λ))) with scaling c = 5, plus the end points (0, 1) and (1, 0).
3. MAUVE = area under that curve (the mean of the areas taken along x and along y).

Identical sets give 1; sets whose clusters do not overlap give nearly 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from luoxia.core.errors import InvalidParameterError


@dataclasses.dataclass
class MauveResult:
    mauve: float
    p_hist: np.ndarray
    q_hist: np.ndarray
    divergence_curve: np.ndarray  # (m + 2, 2): the frontier's points, x = exp(-c·KL(q‖R)), y = exp(-c·KL(p‖R))
    num_buckets: int


def kl_multinomial(p: np.ndarray, q: np.ndarray) -> float:
    if np.any((p != 0) & (q == 0)):
        return np.inf
    both = (p != 0) & (q != 0)
    return float(np.sum(p[both] * np.log(p[both] / q[both])))


def divergence_curve(p: np.ndarray, q: np.ndarray, mixture_weights: np.ndarray, scaling: float) -> np.ndarray:
    points = [[0, np.inf]]
    for w in np.sort(mixture_weights):
        r = w * p + (1 - w) * q
        points.append([kl_multinomial(q, r), kl_multinomial(p, r)])
    points.append([np.inf, 0])
    return np.exp(-scaling * np.asarray(points))


def area(curve: np.ndarray) -> float:
    x, y = curve.T
    i, j = np.argsort(x), np.argsort(y)
    return 0.5 * (float(np.trapezoid(y[i], x[i])) + float(np.trapezoid(x[j], y[j])))


def quantize(p_features: np.ndarray, q_features: np.ndarray, num_buckets: int, explained_variance: float = 0.9,
             num_redo: int = 5, max_iter: int = 500, seed: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Step 1: histograms of P and Q over k-means buckets of their PCA-reduced, normalised features."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize

    data = normalize(np.vstack([q_features, p_features]).astype(np.float64), norm="l2", axis=1)
    pca = PCA(n_components=None, whiten=False, random_state=seed + 1).fit(data)
    keep = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= explained_variance)) + 1
    data = pca.transform(data)[:, :keep].astype(np.float32)
    labels = KMeans(n_clusters=num_buckets, n_init=num_redo, max_iter=max_iter, random_state=seed + 2).fit_predict(data)
    q_counts = np.bincount(labels[:len(q_features)], minlength=num_buckets)
    p_counts = np.bincount(labels[len(q_features):], minlength=num_buckets)
    return p_counts / p_counts.sum(), q_counts / q_counts.sum()


def compute_mauve(p_features, q_features, num_buckets: int | str = "auto", scaling: float = 5.0,
                  discretization: int = 25, seed: int = 25) -> MauveResult:
    """MAUVE of model features P (n, d) against human features Q (m, d)."""
    p_features, q_features = np.asarray(p_features), np.asarray(q_features)
    if len(p_features) < 2 or len(q_features) < 2:
        raise InvalidParameterError(f"MAUVE needs at least 2 texts on each side, got {len(p_features)} and "
                                    f"{len(q_features)}; give more generations and references")
    if num_buckets == "auto":
        num_buckets = max(2, int(round(min(len(p_features), len(q_features)) / 10)))
    p, q = quantize(p_features, q_features, int(num_buckets), seed=seed)
    curve = divergence_curve(p, q, np.linspace(1e-6, 1 - 1e-6, discretization), scaling)
    return MauveResult(area(curve), p, q, curve, int(num_buckets))
