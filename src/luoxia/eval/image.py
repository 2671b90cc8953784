"""Image evaluation: FID and KID with the project's feature network, prompt adherence on the shapes
world (a pixel detector), class adherence on digits (an independent classifier), and a report.

    fid(real_feats, fake_feats)     Fréchet distance of Gaussians fitted to the features (Heusel et al. 2017)
    kid(real_feats, fake_feats)     unbiased MMD² with the kernel (x·y/d + 1)³, mean over subsets (Bińkowski et al.)
    digit_classifier()              an SVM on scikit-learn's 8×8 digits; `classify_digits(images)` area-averages
                                    generated images down to 8×8 first. Independent of every generator.
    evaluate_model(model, data="shapes"|"digits", n=...)   samples, FID/KID against fresh real images,
                                    adherence and sample time, as a dict

Numbers from our 256-d feature network are comparable with each other only; they are not Inception FIDs.
"""

from __future__ import annotations

import time

import numpy as np

from luoxia.core.errors import InvalidParameterError


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½).

    Tr (Σ_a Σ_b)^½ is computed as Σ √λ_i of the symmetric Σ_a^½ Σ_b Σ_a^½ (same eigenvalues), which
    stays real and stable where a general matrix square root does not."""
    if len(a) < 2 or len(b) < 2:
        raise InvalidParameterError("FID needs at least 2 images on each side")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    tr_covmean = np.sqrt(np.clip(lam, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean)


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 20, subset_size: int = 200, seed: int = 0) -> tuple[float, float]:
    """(mean, std) over subsets of the unbiased MMD² estimate with a cubic polynomial kernel."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise InvalidParameterError("KID needs at least 2 images on each side")
    d = a.shape[1]
    values = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        mmd = ((kxx.sum() - np.trace(kxx)) + (kyy.sum() - np.trace(kyy))) / (m * (m - 1)) - 2 * kxy.mean()
        values.append(mmd)
    return float(np.mean(values)), float(np.std(values))


class DigitClassifier:
    """scikit-learn's SVC (RBF, C=10) on the 8×8 digits at their 0..16 grey levels."""

    def __init__(self):
        from sklearn.datasets import load_digits
        from sklearn.svm import SVC

        d = load_digits()
        self.svc = SVC(C=10.0, gamma=0.001).fit(d.data, d.target)

    @staticmethod
    def to_8x8(images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W[, C]) → (N, 64) in 0..16, area-averaged to 8×8 (H, W multiples of 8)."""
        x = np.asarray(images, np.float64)
        if x.ndim == 4:
            x = x.mean(-1)
        n, h, w = x.shape
        x = x.reshape(n, 8, h // 8, 8, w // 8).mean(axis=(2, 4))
        return (x / 255.0 * 16.0).reshape(n, 64)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.svc.predict(self.to_8x8(images))


def real_images(data: str, n: int, seed: int = 1) -> tuple[np.ndarray, list[str] | None, np.ndarray | None]:
    """Fresh real images to compare against: shapes scenes with another seed than training's, or digits."""
    from luoxia.image.datasets import digits_dataset, shapes_dataset

    if data == "shapes":
        d = shapes_dataset(n, seed=1000 + seed)
        return d.images, d.captions, None
    if data == "digits":
        d = digits_dataset(32)
        idx = np.random.default_rng(seed).permutation(len(d))[:n]
        return d.images[idx], None, d.labels[idx]
    raise InvalidParameterError(f"data must be shapes or digits, got {data!r}")


def one_object_prompts(n: int, seed: int = 0) -> list[str]:
    """n full one-object captions (size, colour, kind, cell), drawn uniformly."""
    from luoxia.image import shapes as world

    rng = np.random.default_rng(seed)
    return [world.caption(world.random_scene(rng, 1)) for _ in range(n)]


def sample_model(model, data: str, n: int, *, steps: int = 50, guidance: float = 3.0, seed: int = 0,
                 batch: int = 64, log=None) -> dict:
    """Generate n images the evaluation's way: per-image prompts (shapes) or labels (digits, 0..9 in turn)."""
    images, prompts = [], []
    t0 = time.perf_counter()
    text = model.cond == "text"
    if data == "shapes":
        wanted = one_object_prompts(n, seed) if text else [None] * n
    else:
        wanted = [str(i % 10) for i in range(n)] if model.class_names else [None] * n
    # group equal conditions into batches (the pipeline takes one prompt per call)
    for start in range(0, n, batch):
        chunk = wanted[start:start + batch]
        if text or model.class_names:
            for w in dict.fromkeys(chunk):
                k = chunk.count(w)
                r = model.generate(w if text else None, label=None if text else w, n=k, steps=steps,
                                   guidance=guidance, seed=seed + start + len(images))
                images.extend(r.images)
                prompts.extend([w] * k)
        else:
            r = model.generate(None, n=len(chunk), steps=steps, guidance=guidance, seed=seed + start)
            images.extend(r.images)
            prompts.extend(chunk)
        if log:
            log(f"sampled {len(images)}/{n} ({time.perf_counter() - t0:.0f} s)")
    seconds = time.perf_counter() - t0
    return {"images": np.stack(images), "prompts": prompts, "seconds": seconds}


def evaluate_model(model, data: str, n: int = 500, *, steps: int = 50, guidance: float = 3.0, seed: int = 0,
                   log=None) -> dict:
    from luoxia.eval.image_features import load_feature_net

    s = sample_model(model, data, n, steps=steps, guidance=guidance, seed=seed, log=log)
    fake = s["images"]
    real, _, _ = real_images(data, max(n, 500), seed=seed + 1)
    net = load_feature_net()
    fr, ff = net.features(real), net.features(fake)
    k_mean, k_std = kid(fr, ff)
    result = {"model": model.name, "kind": model.kind, "data": data, "n": n, "steps": steps, "guidance": guidance,
              "seed": seed, "fid": fid(fr, ff), "kid": k_mean, "kid_std": k_std,
              "seconds": round(s["seconds"], 2), "images_per_s": round(n / s["seconds"], 3)}
    if data == "shapes" and model.cond == "text":
        from luoxia.image.detect import adherence

        result["adherence"] = adherence(s["prompts"], fake)
    if data == "digits" and model.class_names:
        pred = DigitClassifier().predict(fake)
        wanted = np.array([int(p) for p in s["prompts"]])
        result["adherence"] = {"all": float((pred == wanted).mean())}
    result["images"] = fake
    result["prompts"] = s["prompts"]
    return result


def image_report(result: dict, directory) -> dict:
    """results.json, report.md, report.html and samples.png (labelled) in `directory`."""
    from pathlib import Path

    from luoxia.core.artifact import Artifact
    from luoxia.core.provenance import Provenance
    from luoxia.eval.report import Table, write_report
    from luoxia.image.grid import make_grid

    directory = Path(directory)
    images, prompts = result["images"], result["prompts"]
    shown = images[:64]
    Artifact("image", make_grid(shown, nrow=8, scale=max(1, 64 // images.shape[1])),
             Provenance(model=result["model"], params={k: result[k] for k in ("steps", "guidance", "data")},
                        seed=result["seed"], prompt=" | ".join(str(p) for p in prompts[:64]))).save(
        directory / "samples.png")
    data = {k: v for k, v in result.items() if k not in ("images", "prompts")}
    rows = [["FID (ours, 256-d features)", round(result["fid"], 3)],
            ["KID × 1000", round(1000 * result["kid"], 3)],
            ["images / s", result["images_per_s"]]]
    for k, v in result.get("adherence", {}).items():
        rows.append([f"adherence: {k}", round(v, 3)])
    table = Table(f"{result['model']} ({result['kind']}) on {result['data']}", ["metric", "value"], rows,
                  f"{result['n']} samples, {result['steps']} steps, guidance {result['guidance']}, seed "
                  f"{result['seed']}. FID/KID use luoxia's own feature network: compare them with each other only.")
    from luoxia.eval.report import Figure

    return write_report(directory, "luoxia eval image", data, [table], [Figure("samples.png", "samples")])
