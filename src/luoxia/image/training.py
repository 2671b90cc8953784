"""`luoxia train image`: train a VAE, a GAN or a diffusion model on shapes, digits or a folder of images.

    cfg = ImageTrainConfig(model="ddpm", data="shapes", out="runs/shapes", steps=4000)
    summary = train(cfg)     # → run folder: checkpoints/, metrics.jsonl, loss.png, samples/, the model

One loop for the three families; each family is a small `Method` (networks, optimizers, one
training step, a sampler for the preview grids, the network to export). A step:
    1. lr from the warmup-cosine schedule (a function of the step)
    2. the batch: B indices drawn from a generator seeded by (seed, step), so resuming needs only the step
    3. the family's update (for a GAN: discriminator, then generator), EMA of the sampling network
    4. now and then: a progress line (step, loss, it/s, ETA) and metrics row, a sample grid PNG,
       the loss curve PNG, an atomic checkpoint (resumes bit-exactly)
At the end the run folder is also a model folder (config.json + model.safetensors of the EMA
weights) that `luoxia image --model RUN_FOLDER` samples; with `name` it is registered.

Shapes: B images, C channels, H×W pixels.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from luoxia.core import atomic
from luoxia.core.errors import InvalidParameterError
from luoxia.core.paths import trained_models_dir
from luoxia.image.datasets import ImageData, load_dataset, to_tensor
from luoxia.image.diffusion import Condition
from luoxia.train import resume
from luoxia.train.schedule import WarmupCosine

MODELS = ("ddpm", "vae", "gan")


@dataclasses.dataclass
class ImageTrainConfig:
    model: str = "ddpm"  # ddpm | vae | gan
    data: str = "shapes"  # shapes | digits | a folder
    out: str = "runs/image"
    size: int = 32
    n: int | None = None  # shapes: scenes to render (default 20000); folders: at most this many files
    cond: str = "auto"  # auto (text if captions, else class if labels, else none) | text | class | none
    preset: str = "small"  # network size, see each family's PRESETS
    network: dict = dataclasses.field(default_factory=dict)  # overrides of the network config
    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-4
    min_lr: float = 2e-5
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1  # condition dropped this often (classifier-free guidance)
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"  # or epsilon; v stays well-posed at the cosine schedule's ᾱ_T ≈ 0
    gan_reg: str = "sn"  # sn (spectral norm) | gp (gradient penalty, WGAN-GP)
    kl_weight: float = 0.05  # VAE: β of the KL term against the summed squared error (≈ 2σ² of the decoder)
    seed: int = 0
    log_every: int = 20
    sample_every: int = 500
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    threads: int | None = None
    name: str | None = None  # register the finished model as $LUOXIA_HOME/models/<name>
    resume: bool = True

    def validate(self) -> ImageTrainConfig:
        if self.model not in MODELS:
            raise InvalidParameterError(f"--model must be one of {', '.join(MODELS)}, got {self.model!r}")
        if self.cond not in ("auto", "text", "class", "none"):
            raise InvalidParameterError(f"--cond must be auto, text, class or none, got {self.cond!r}")
        if self.gan_reg not in ("sn", "gp"):
            raise InvalidParameterError(f"--gan-reg must be sn or gp, got {self.gan_reg!r}")
        if self.size < 8 or self.size & (self.size - 1):
            raise InvalidParameterError(f"--size must be a power of two >= 8, got {self.size}")
        for key in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise InvalidParameterError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.p_uncond < 1 or not 0 <= self.ema_decay < 1 or self.lr <= 0:
            raise InvalidParameterError("need 0 <= p_uncond < 1, 0 <= ema_decay < 1 and lr > 0")
        return self


def resolve_cond(cfg: ImageTrainConfig, data: ImageData) -> str:
    if cfg.cond == "auto":
        if data.labels is not None:
            return "class"
        return "text" if data.captions is not None else "none"
    if cfg.cond == "text" and data.captions is None:
        raise InvalidParameterError(f"--cond text needs captions, and {cfg.data} has none; add NAME.txt files or a "
                                    "CSV (file, caption), or use --cond none")
    if cfg.cond == "class" and data.labels is None:
        raise InvalidParameterError(f"--cond class needs labels, and {cfg.data} has none; put each class in a "
                                    "sub-folder, or use --cond none")
    return cfg.cond


class Conditioner:
    """Turns a batch's captions or labels into a `Condition`, dropping it at rate p_uncond."""

    def __init__(self, cond: str, data: ImageData, num_classes: int, text_encoder=None):
        self.cond, self.data, self.num_classes, self.text = cond, data, num_classes, text_encoder

    def batch(self, idx: np.ndarray, rng: np.random.Generator, p_uncond: float) -> Condition:
        drop = rng.random(len(idx)) < p_uncond
        if self.cond == "class":
            labels = torch.from_numpy(self.data.labels[idx]).clone()
            labels[torch.from_numpy(drop)] = self.num_classes
            return Condition(labels=labels)
        if self.cond == "text":
            return Condition(text=self.text.encode(["" if d else self.data.captions[i] for i, d in zip(idx, drop)]))
        return Condition()

    def null(self, n: int) -> Condition | None:
        if self.cond == "class":
            return Condition(labels=torch.full((n,), self.num_classes, dtype=torch.long))
        if self.cond == "text":
            return Condition(text=self.text.encode([""] * n))
        return None

    def preview(self, n: int) -> Condition:
        """The conditions of the preview grid: the first n distinct captions / every class in turn."""
        if self.cond == "class":
            return Condition(labels=torch.arange(n) % self.num_classes)
        if self.cond == "text":
            return Condition(text=self.text.encode(preview_captions(self.data, n)))
        return Condition()


def preview_captions(data: ImageData, n: int) -> list[str]:
    seen: list[str] = []
    for c in data.captions:
        if c not in seen:
            seen.append(c)
        if len(seen) == n:
            break
    return (seen * n)[:n]


def ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), net.buffers()):
            e.copy_(b)


def _fmt_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def make_method(cfg: ImageTrainConfig, data: ImageData, cond: str):
    from luoxia.image import methods

    return methods.METHODS[cfg.model](cfg, data, cond)


def train(cfg: ImageTrainConfig, *, stop_at: int | None = None, log: Callable[[str], None] = _stderr) -> dict:
    """Run (or resume) training as `cfg` says; `stop_at` ends this process early after that many steps,
    as an interruption would. Returns a summary dict."""
    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    t_data = time.perf_counter()
    data = load_dataset(cfg.data, size=cfg.size, n=cfg.n, seed=cfg.seed)
    cond = resolve_cond(cfg, data)
    skipped = f"; skipped {', '.join(f'{v} {k}' for k, v in data.skipped.items())}" if data.skipped else ""
    log(f"data {data.name}: {len(data)} images {data.size}×{data.size}×{data.channels}, condition {cond}{skipped} "
        f"({time.perf_counter() - t_data:.1f} s)")
    torch.manual_seed(cfg.seed)
    method = make_method(cfg, data, cond)
    method.prepare(out, log)
    schedule = WarmupCosine(cfg.lr, cfg.min_lr, min(cfg.warmup_steps, cfg.steps), cfg.steps)
    images = to_tensor(data.images)  # (N, C, H, W) in [-1, 1]

    start, elapsed = 0, 0.0
    checkpoint = resume.latest(out) if cfg.resume else None
    if checkpoint is not None:
        from luoxia.image import checkpoint as ckpt

        meta = ckpt.restore(checkpoint, method.modules, method.optimizers)
        start, elapsed = meta["step"], meta.get("seconds", 0.0)
        log(f"resumed from {checkpoint} (step {start})")
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    _truncate_metrics(out / "metrics.jsonl", start)
    n_params = sum(p.numel() for p in method.net.parameters())
    log(f"training {cfg.model} ({n_params / 1e6:.2f}M parameters in the sampler): {cfg.steps} steps of "
        f"{cfg.batch_size} images; run folder {out}")

    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    t_log, steps_since, t0 = time.perf_counter(), 0, time.perf_counter()
    losses: dict[str, float] = {}
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as metrics:
        for step in range(start, end):
            lr = schedule(step)
            for opt in method.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
            rng = np.random.default_rng([cfg.seed, 1, step])
            idx = rng.integers(0, len(data), cfg.batch_size)
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            losses = method.step(images[idx], idx, rng, gen, step)
            ema_update(method.ema, method.net, min(cfg.ema_decay, (1 + step) / (10 + step)))
            done, steps_since = step + 1, steps_since + 1
            if done % cfg.log_every == 0 or done == end:
                now = time.perf_counter()
                it_s = steps_since / max(now - t_log, 1e-9)
                loss_text = " | ".join(f"{k} {v:.4f}" for k, v in losses.items())
                log(f"step {done}/{cfg.steps} | {loss_text} | lr {lr:.2e} | {it_s:.2f} it/s "
                    f"({it_s * cfg.batch_size:.0f} img/s) | ETA {_fmt_time((cfg.steps - done) / it_s)}")
                metrics.write(json.dumps({"step": done, **losses, "lr": lr, "it_s": round(it_s, 3)}) + "\n")
                metrics.flush()
                t_log, steps_since = now, 0
            if done % cfg.sample_every == 0 or done == end:
                write_preview(method, out, done, cfg)
                plot_losses(out)
                t_log = time.perf_counter()
            if done % cfg.checkpoint_every == 0 or done == end:
                from luoxia.image import checkpoint as ckpt

                seconds = elapsed + time.perf_counter() - t0
                ckpt.save(out, done, method.modules, method.optimizers,
                          {"seconds": seconds, "config": dataclasses.asdict(cfg),
                           "data_position": {"sampler": "seeded-indices-v1", "seed": cfg.seed, "next_batch": done}},
                          keep=cfg.keep_checkpoints)
                t_log = time.perf_counter()
    seconds = elapsed + time.perf_counter() - t0
    finished = end == cfg.steps
    summary = {"steps": end, "finished": finished, **losses, "seconds": round(seconds, 1), "out": str(out),
               "parameters": n_params}
    if finished:
        method.export(out, {"data": cfg.data, "training": {
            "steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr, "ema_decay": cfg.ema_decay,
            "seed": cfg.seed, "images": len(data), "seconds": round(seconds, 1), "final_losses": losses,
            "config": dataclasses.asdict(cfg)}})
        if cfg.name:
            summary["registered"] = str(register(out, cfg.name))
            log(f"registered as {cfg.name!r}: luoxia image --model {cfg.name} ...")
    return summary


def write_preview(method, out: Path, step: int, cfg: ImageTrainConfig) -> Path:
    """samples/step_NNNNNN.png: a labelled grid from the EMA network."""
    from luoxia.core.artifact import Artifact
    from luoxia.core.provenance import Provenance
    from luoxia.image.grid import make_grid

    images, prompts = method.preview(torch.Generator().manual_seed(cfg.seed))
    grid = make_grid(images, nrow=8, scale=max(1, 128 // images.shape[1]))
    prov = Provenance(model=f"{cfg.model} run {out.name} step {step}", params={"preview": True, "step": step},
                      seed=cfg.seed, prompt=" | ".join(prompts))
    path = out / "samples" / f"step_{step:06d}.png"
    Artifact("image", grid, prov).save(path)
    return path


def register(run_dir: Path, name: str) -> Path:
    final = trained_models_dir() / name
    with atomic.atomic_dir(final) as tmp:
        for f in ("config.json", "model.safetensors"):
            (tmp / f).write_bytes((run_dir / f).read_bytes())
    return final


def _truncate_metrics(path: Path, step: int) -> None:
    if not path.is_file():
        return
    rows = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and
            json.loads(ln).get("step", 0) <= step]
    atomic.write_text(path, "".join(r + "\n" for r in rows))


def plot_losses(run_dir: Path) -> Path | None:
    """loss.png: every loss of the run against the step (log scale)."""
    path = run_dir / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()] \
        if path.is_file() else []
    keys = [k for k in (rows[0] if rows else {}) if k not in ("step", "lr", "it_s")]
    if not rows or not keys:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for k in keys:
        ax.plot([r["step"] for r in rows if k in r], [r[k] for r in rows if k in r], label=k, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if all(r[k] > 0 for r in rows for k in keys if k in r):
        ax.set_yscale("log")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = run_dir / "loss.png"
    with atomic.atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def clone_frozen(net: torch.nn.Module) -> torch.nn.Module:
    ema = copy.deepcopy(net)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema.eval()


def export_checkpoint(checkpoint: Path, out: Path) -> Path:
    """A model folder from a checkpoint of an unfinished run (its EMA weights), to sample or evaluate it."""
    from luoxia.image import checkpoint as ckpt

    meta = json.loads((Path(checkpoint) / "state.json").read_text())
    cfg = ImageTrainConfig(**meta["config"])
    data = load_dataset(cfg.data, size=cfg.size, n=cfg.n, seed=cfg.seed)
    method = make_method(cfg, data, resolve_cond(cfg, data))
    ckpt.restore(Path(checkpoint), method.modules, method.optimizers)
    method.export(Path(out), {"data": cfg.data, "training": {"steps": meta["step"], "checkpoint": str(checkpoint),
                                                             "config": meta["config"]}})
    return Path(out)
