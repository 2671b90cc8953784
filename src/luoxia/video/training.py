"""`luoxia train video`: train the temporal UNet on the moving-shapes world or a folder of clips.

    cfg = VideoTrainConfig(out="runs/video", steps=3000, init="shapes")
    summary = train(cfg)   # → run folder: checkpoints/, metrics.jsonl, loss.png, samples/, the model

The loop is the image loop's (`luoxia.image.training`), for clips: warmup-cosine lr, batches drawn
from a generator seeded by (seed, step) so a resume needs only the step, the v-prediction loss
with one timestep per clip (half of them from the noisier half of the schedule, `clip_loss`),
captions dropped at rate p_uncond for classifier-free guidance, EMA weights, atomic checkpoints
(`luoxia.image.checkpoint`), a preview strip per `sample_every` steps (one row per clip; also
at the end of runs of at least that many steps) and the loss curve. `init` names an image model
whose spatial weights start the network (its text encoder and schedule are the same), so only
motion has to be learnt.
"""

from __future__ import annotations

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
from luoxia.image.diffusion import Condition
from luoxia.image.training import clone_frozen, ema_update, plot_losses
from luoxia.train import resume
from luoxia.train.schedule import WarmupCosine
from luoxia.video import world
from luoxia.video.data import VideoData, load_dataset, to_tensor, to_uint8
from luoxia.video.model import VideoUNet, VideoUNetConfig

PREVIEW_PROMPTS = ["a red circle moves from left to right", "a blue square moves from top to bottom",
                   "a green triangle moves from right to left", "a yellow circle grows"]


@dataclasses.dataclass
class VideoTrainConfig:
    data: str = "moving-shapes"  # moving-shapes | a folder of videos
    out: str = "runs/video"
    frames: int = 8
    size: int = 32
    n: int | None = None  # moving-shapes: clips to render (default 4000); folders: at most this many files
    motions: tuple[str, ...] = world.MOTIONS  # moving-shapes: which motions
    variants: float = 0.5  # moving-shapes: share of captions phrased another way ("moves to the right")
    init: str | None = "shapes"  # an image model for the spatial weights (None: train from scratch)
    preset: str = "shapes"  # spatial network size without init (see luoxia.image.unet.PRESETS)
    steps: int = 3000
    batch_size: int = 8  # clips per step
    lr: float = 2e-4
    min_lr: float = 2e-5
    new_lr_scale: float = 5.0  # the temporal layers and the frame MLP (zero-initialised) learn this much faster
    high_noise_share: float = 0.5  # this share of clips draws its timestep from the noisier half, where layout
    # (and so motion) is decided; the rest uniformly. The spatial model already denoises details well.
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    p_uncond: float = 0.1
    seed: int = 0
    fps: float = 8.0  # the frame rate the model's clips are played at
    log_every: int = 20
    sample_every: int = 500
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    threads: int | None = None
    export_dtype: str = "int8"  # int8 | float16 | float32 of the exported model
    resume: bool = True

    def validate(self) -> VideoTrainConfig:
        self.motions = tuple(self.motions)
        bad = [m for m in self.motions if m not in world.MOTIONS]
        if bad or not self.motions:
            raise InvalidParameterError(f"--motions must be some of {', '.join(world.MOTIONS)}, got {bad or 'none'}")
        if self.frames < 2 or self.frames > 64:
            raise InvalidParameterError(f"--frames must be in [2, 64], got {self.frames}")
        if self.size < 8 or self.size & (self.size - 1):
            raise InvalidParameterError(f"--size must be a power of two >= 8, got {self.size}")
        for key in ("steps", "batch_size", "log_every", "sample_every", "checkpoint_every"):
            if getattr(self, key) < 1:
                raise InvalidParameterError(f"--{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.high_noise_share <= 1:
            raise InvalidParameterError(f"high_noise_share must be in [0, 1], got {self.high_noise_share}")
        if not 0 <= self.p_uncond < 1 or not 0 <= self.ema_decay < 1 or self.lr <= 0 or self.new_lr_scale <= 0:
            raise InvalidParameterError("need 0 <= p_uncond < 1, 0 <= ema_decay < 1, lr > 0 and new_lr_scale > 0")
        if self.export_dtype not in ("int8", "float16", "float32"):
            raise InvalidParameterError(f"export_dtype must be int8, float16 or float32, got {self.export_dtype!r}")
        return self


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def build_network(cfg: VideoTrainConfig, log: Callable[[str], None]) -> tuple[VideoUNet, dict]:
    """The video network and its noise schedule, from the `init` image model when given."""
    from luoxia.image.schedulers import ScheduleConfig
    from luoxia.image.unet import PRESETS, UNetConfig

    if cfg.init:
        from luoxia.image.pipeline import ImageModel

        image = ImageModel.load(cfg.init)
        if image.kind != "ddpm" or image.cond != "text" or image.size != cfg.size:
            raise InvalidParameterError(f"--init must be a text-conditioned {cfg.size}×{cfg.size} diffusion model; "
                                        f"{cfg.init} is a {image.kind} ({image.cond}) of {image.size}×{image.size}")
        net = VideoUNet(VideoUNetConfig(unet=image.config["network"], frames=cfg.frames))
        net.unet.load_state_dict(image.net.state_dict())
        log(f"spatial weights from the image model {cfg.init!r}")
        return net, dict(image.config["schedule"])
    if cfg.preset not in PRESETS:
        raise InvalidParameterError(f"--preset must be one of {', '.join(PRESETS)}, got {cfg.preset!r}")
    spatial = UNetConfig(**{**PRESETS[cfg.preset], "image_size": cfg.size, "cond": "text"})
    schedule = ScheduleConfig(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing",
                              prediction_type="v_prediction")
    return VideoUNet(VideoUNetConfig(unet=spatial.to_dict(), frames=cfg.frames)), dataclasses.asdict(schedule)


def clip_loss(net: VideoUNet, scheduler, x0: torch.Tensor, cond: Condition, generator: torch.Generator,
              high_noise_share: float = 0.0) -> torch.Tensor:
    """`luoxia.image.diffusion.training_loss` on clips (B, T, C, H, W), one timestep per clip, with a share of
    the clips' timesteps drawn from the upper half of the schedule instead of uniformly."""
    B, T = x0.shape[0], scheduler.config.num_train_timesteps
    t = torch.randint(0, T, (B,), generator=generator)
    high = torch.rand(B, generator=generator) < high_noise_share
    t = torch.where(high, torch.randint(T // 2, T, (B,), generator=generator), t)
    noise = torch.randn(x0.shape, generator=generator)
    x_t = scheduler.add_noise(x0, noise, t)
    return torch.nn.functional.mse_loss(net(x_t, t, **cond.kwargs()), scheduler.target(x0, noise, t))


def make_optimizer(net: VideoUNet, cfg: VideoTrainConfig) -> torch.optim.AdamW:
    """AdamW with two groups: the spatial UNet at lr, the new temporal parts at lr × new_lr_scale."""
    spatial = list(net.unet.parameters())
    ids = {id(p) for p in spatial}
    new = [p for p in net.parameters() if id(p) not in ids]
    return torch.optim.AdamW([{"params": spatial, "lr_scale": 1.0}, {"params": new, "lr_scale": cfg.new_lr_scale}],
                             lr=cfg.lr, weight_decay=0.0)


def encode_captions(text, data: VideoData, out: Path, log: Callable[[str], None]) -> None:
    cache = out / "text_cache.safetensors"
    if cache.is_file():
        text.load_cache(cache)
    todo = [t for t in sorted(set(data.captions) | {""} | set(PREVIEW_PROMPTS)) if t not in text._cache]
    if todo:
        log(f"encoding {len(todo)} captions with all-MiniLM-L6-v2 ...")
        text.encode(todo)
        out.mkdir(parents=True, exist_ok=True)
        text.save_cache(cache)


def train(cfg: VideoTrainConfig, *, stop_at: int | None = None, log: Callable[[str], None] = _stderr) -> dict:
    """Run (or resume) training; `stop_at` ends this process after that many steps, as an interruption would."""
    from luoxia.image import checkpoint as ckpt
    from luoxia.image.schedulers import DDPMScheduler, ScheduleConfig
    from luoxia.image.text_encoder import shared_text_encoder

    cfg.validate()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    t_data = time.perf_counter()
    data = load_dataset(cfg.data, cfg.frames, cfg.size, cfg.n, cfg.seed, cfg.motions, cfg.variants)
    skipped = f"; skipped {', '.join(f'{v} {k}' for k, v in data.skipped.items())}" if data.skipped else ""
    log(f"data {data.name}: {len(data)} clips of {data.frames} frames {data.size}×{data.size}{skipped} "
        f"({time.perf_counter() - t_data:.1f} s)")
    torch.manual_seed(cfg.seed)
    net, schedule_dict = build_network(cfg, log)
    ema = clone_frozen(net)
    opt = make_optimizer(net, cfg)
    modules, optimizers = {"net": net, "ema": ema}, {"net": opt}
    scheduler = DDPMScheduler(ScheduleConfig(**schedule_dict))
    text = shared_text_encoder()
    encode_captions(text, data, out, log)
    clips = to_tensor(data.clips)  # (N, T, 3, H, W) in [-1, 1]
    lr_at = WarmupCosine(cfg.lr, cfg.min_lr, min(cfg.warmup_steps, cfg.steps), cfg.steps)

    start, elapsed = 0, 0.0
    checkpoint = resume.latest(out) if cfg.resume else None
    if checkpoint is not None:
        meta = ckpt.restore(checkpoint, modules, optimizers)
        start, elapsed = meta["step"], meta.get("seconds", 0.0)
        log(f"resumed from {checkpoint} (step {start})")
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
    _truncate_metrics(out / "metrics.jsonl", start)
    n_params = sum(p.numel() for p in net.parameters())
    log(f"training the video UNet ({n_params / 1e6:.2f}M parameters): {cfg.steps} steps of {cfg.batch_size} clips; "
        f"run folder {out}")
    end = cfg.steps if stop_at is None else min(cfg.steps, stop_at)
    t_log, since, t0 = time.perf_counter(), 0, time.perf_counter()
    loss_value = float("nan")
    net.train()
    with open(out / "metrics.jsonl", "a", encoding="utf-8") as metrics:
        for step in range(start, end):
            lr = lr_at(step)
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            rng = np.random.default_rng([cfg.seed, 2, step])
            idx = rng.integers(0, len(data), cfg.batch_size)
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            drop = rng.random(len(idx)) < cfg.p_uncond
            cond = Condition(text=text.encode(["" if d else data.captions[i] for i, d in zip(idx, drop)]))
            loss = clip_loss(net, scheduler, clips[idx], cond, gen, cfg.high_noise_share)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            ema_update(ema, net, min(cfg.ema_decay, (1 + step) / (10 + step)))
            loss_value = loss.item()
            done, since = step + 1, since + 1
            if done % cfg.log_every == 0 or done == end:
                now = time.perf_counter()
                it_s = since / max(now - t_log, 1e-9)
                eta = (cfg.steps - done) / max(it_s, 1e-9)
                log(f"step {done}/{cfg.steps} | loss {loss_value:.4f} | lr {lr:.2e} | {it_s:.2f} it/s | "
                    f"ETA {int(eta // 60)}:{int(eta % 60):02d}")
                metrics.write(json.dumps({"step": done, "loss": loss_value, "lr": lr, "it_s": round(it_s, 3)}) + "\n")
                metrics.flush()
                t_log, since = now, 0
            if done % cfg.sample_every == 0 or done == end and cfg.steps >= cfg.sample_every:
                write_preview(ema, schedule_dict, text, out, done, cfg)
                plot_losses(out)
                t_log = time.perf_counter()
            if done % cfg.checkpoint_every == 0 or done == end:
                ckpt.save(out, done, modules, optimizers,
                          {"seconds": elapsed + time.perf_counter() - t0, "config": _jsonable(cfg),
                           "data_position": {"sampler": "seeded-indices-v1", "seed": cfg.seed, "next_batch": done}},
                          keep=cfg.keep_checkpoints)
                t_log = time.perf_counter()
    seconds = elapsed + time.perf_counter() - t0
    finished = end == cfg.steps
    summary = {"steps": end, "finished": finished, "loss": loss_value, "seconds": round(seconds, 1),
               "out": str(out), "parameters": n_params}
    if finished:
        export(ema, schedule_dict, cfg, out, {"steps": cfg.steps, "seconds": round(seconds, 1), "clips": len(data),
                                              "final_loss": loss_value})
    return summary


def _jsonable(cfg: VideoTrainConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["motions"] = list(d["motions"])
    return d


def export(ema: VideoUNet, schedule: dict, cfg: VideoTrainConfig, out: Path, training: dict) -> Path:
    from luoxia.video.formats import save_model

    dtype = {"int8": torch.int8, "float16": torch.float16, "float32": torch.float32}[cfg.export_dtype]
    return save_model(out, ema, {"schedule": schedule, "frames": cfg.frames, "image_size": cfg.size, "fps": cfg.fps,
                                 "data": cfg.data, "motions": list(cfg.motions), "init": cfg.init,
                                 "training": {**training, "config": _jsonable(cfg)}}, dtype)


def export_checkpoint(checkpoint: Path, out: Path, log: Callable[[str], None] = _stderr) -> Path:
    """A model folder from a checkpoint of an unfinished run (its EMA weights)."""
    from luoxia.image import checkpoint as ckpt

    meta = json.loads((Path(checkpoint) / "state.json").read_text())
    cfg = VideoTrainConfig(**{**meta["config"], "motions": tuple(meta["config"]["motions"])})
    net, schedule = build_network(cfg, log)
    ema = clone_frozen(net)
    opt = make_optimizer(net, cfg)
    ckpt.restore(Path(checkpoint), {"net": net, "ema": ema}, {"net": opt})
    return export(ema, schedule, cfg, Path(out), {"steps": meta["step"], "seconds": round(meta.get("seconds", 0), 1),
                                                  "checkpoint": str(checkpoint)})


@torch.no_grad()
def write_preview(ema: VideoUNet, schedule: dict, text, out: Path, step: int, cfg: VideoTrainConfig) -> Path:
    """samples/step_NNNNNN.png: one row of frames per preview prompt, from the EMA network."""
    from luoxia.core.artifact import Artifact
    from luoxia.core.provenance import Provenance
    from luoxia.image.diffusion import sample
    from luoxia.image.grid import make_grid
    from luoxia.image.schedulers import ScheduleConfig, make_sampler

    n = len(PREVIEW_PROMPTS)
    x = sample(ema, make_sampler("ddim", ScheduleConfig(**schedule)), (n, cfg.frames, 3, cfg.size, cfg.size),
               Condition(text=text.encode(PREVIEW_PROMPTS)), Condition(text=text.encode([""] * n)),
               guidance=3.0, steps=20, generator=torch.Generator().manual_seed(cfg.seed))
    frames = to_uint8(x).reshape(n * cfg.frames, cfg.size, cfg.size, 3)
    grid = make_grid(frames, nrow=cfg.frames, scale=max(1, 64 // cfg.size))
    prov = Provenance(model=f"video run {out.name} step {step}", params={"preview": True, "step": step},
                      seed=cfg.seed, prompt=" | ".join(PREVIEW_PROMPTS))
    path = out / "samples" / f"step_{step:06d}.png"
    Artifact("image", grid, prov).save(path)
    return path


def _truncate_metrics(path: Path, step: int) -> None:
    if path.is_file():
        rows = [ln for ln in path.read_text(encoding="utf-8").splitlines()
                if ln.strip() and json.loads(ln).get("step", 0) <= step]
        atomic.write_text(path, "".join(r + "\n" for r in rows))
