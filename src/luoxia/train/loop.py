"""The training loop: pretraining from scratch or fine-tuning, one process or many (torchrun).

    cfg = load_train_config("run.toml")
    summary = train(cfg)             # → run folder with checkpoints, metrics.jsonl, loss.png, the model

One step (nanoGPT's shape, read top to bottom in `train`):
    1. lr from the schedule (a function of the step)
    2. the global batch for this step (a function of seed and step), this process's slice of it
    3. forward/backward over micro-batches, gradients averaged (accumulation, and DDP across processes)
    4. clip the global gradient norm, AdamW step
    5. now and then: progress line and metrics row, validation loss, atomic checkpoint
At the end the run folder is also a Hugging Face model folder (config.json, model.safetensors,
tokenizer.json), so `luoxia generate --model RUN_FOLDER` works; with `name` set it is registered.

Shapes: B sequences, T tokens per sequence, V vocabulary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from luoxia.core import atomic
from luoxia.core.device import pick_device
from luoxia.core.errors import InvalidParameterError
from luoxia.core.paths import trained_models_dir
from luoxia.data.shards import TokenData
from luoxia.text.model import Transformer
from luoxia.text.model_config import TransformerConfig
from luoxia.train import distributed, resume
from luoxia.train.config import TrainConfig
from luoxia.train.schedule import WarmupCosine
from luoxia.train.step import compiled, lm_loss, make_optimizer

SAMPLER = "random-windows-v1"
EXPORT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json")


class WindowSampler:
    """Batch `i` = `n` windows of T+1 tokens at offsets drawn from a generator seeded by (seed, salt, i).

    Deterministic in the batch index alone: resuming needs no sampler state beyond the step, and
    every process can draw the same global batch and keep its own slice.
    """

    def __init__(self, arrays: list[np.ndarray], seq_len: int, seed: int, salt: int):
        self.arrays, self.seq_len, self.seed, self.salt = arrays, seq_len, seed, salt
        self.starts = np.array([max(0, len(a) - seq_len) for a in arrays], dtype=np.int64)
        self.total = int(self.starts.sum())

    def batch(self, index: int, n: int) -> np.ndarray:
        """(n, T+1) int64 token windows."""
        rng = np.random.default_rng([self.seed, self.salt, index])
        shard = rng.choice(len(self.arrays), size=n, p=self.starts / self.total)
        offsets = (rng.random(n) * self.starts[shard]).astype(np.int64)
        return np.stack([np.asarray(self.arrays[s][o:o + self.seq_len + 1], dtype=np.int64)
                         for s, o in zip(shard, offsets)])


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def build_model(cfg: TrainConfig, data: TokenData, device: torch.device) -> Transformer:
    """A from-scratch model (seeded init) or the `init` model to fine-tune, float32 on `device`."""
    torch.manual_seed(cfg.seed)
    if cfg.init:
        from luoxia.text.loader import build_model as from_bundle
        from luoxia.text.loader import load_bundle

        bundle, _ = load_bundle(cfg.init)
        if bundle.config.vocab_size != data.vocab_size:
            raise InvalidParameterError(
                f"the data in {cfg.data} uses a vocabulary of {data.vocab_size} tokens, the model {cfg.init!r} one of "
                f"{bundle.config.vocab_size}; prepare the data with `--tokenizer {cfg.init}`"
            )
        model = from_bundle(bundle, device, torch.float32).train()
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        model = Transformer(cfg.model.build(data.vocab_size, cfg.seq_len))
        model.init_weights(cfg.model.init_std)
        model.to(device)
    if cfg.seq_len > model.config.max_seq_len:
        raise InvalidParameterError(f"seq_len {cfg.seq_len} exceeds the model's context of {model.config.max_seq_len}; "
                                    "lower seq_len")
    return model


def _batch_layout(cfg: TrainConfig, world: int) -> tuple[int, int, int]:
    """(sequences per process, micro-batch size, accumulation steps) for the global batch."""
    if cfg.batch_size % world:
        raise InvalidParameterError(f"batch_size {cfg.batch_size} must be a multiple of the {world} processes")
    per_rank = cfg.batch_size // world
    micro = cfg.micro_batch_size or per_rank
    if per_rank % micro:
        raise InvalidParameterError(f"batch_size / processes = {per_rank} must be a multiple of micro_batch_size "
                                    f"{micro}; change one of them")
    return per_rank, micro, per_rank // micro


@torch.no_grad()
def evaluate(model: Transformer, sampler: WindowSampler, cfg: TrainConfig, info: distributed.DistInfo,
             device: torch.device, autocast) -> float:
    """Mean validation loss over `eval_batches` fixed batches (the same ones at every evaluation)."""
    was_training = model.training
    model.eval()
    n = cfg.micro_batch_size or cfg.batch_size
    per = -(-n // info.world_size)
    loss_sum, count = 0.0, 0.0
    for i in range(cfg.eval_batches):
        batch = sampler.batch(i, n)
        rows = batch[info.rank * per:(info.rank + 1) * per]
        x = torch.from_numpy(rows if len(rows) else batch[:1]).to(device)  # a sharded model needs every rank's call
        with autocast():
            logits = model(x[:, :-1])
        if len(rows):
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
            loss_sum += loss.item()
            count += x[:, 1:].numel()
    loss_sum, count = distributed.total([loss_sum, count], info, device)
    model.train(was_training)
    return loss_sum / count


def train(cfg: TrainConfig, *, stop_at: int | None = None, log: Callable[[str], None] = _stderr) -> dict:
    """Run (or resume) training as `cfg` says; `stop_at` ends this process early after that many steps,
    as an interruption would (the schedule still spans max_steps). Returns a summary dict."""
    cfg.validate()
    info, device = distributed.setup(pick_device(cfg.device))
    try:
        return _train(cfg, info, device, stop_at, log if info.is_main else (lambda _line: None))
    finally:
        distributed.cleanup(info)


def _train(cfg: TrainConfig, info: distributed.DistInfo, device: torch.device, stop_at: int | None,
           log: Callable[[str], None]) -> dict:
    out = Path(cfg.out)
    data = TokenData.open(cfg.data)
    per_rank, micro, accum = _batch_layout(cfg, info.world_size)
    train_sampler = WindowSampler(data.split("train"), cfg.seq_len, cfg.seed, salt=0)
    if train_sampler.total == 0:
        raise InvalidParameterError(f"the training split of {cfg.data} has fewer than seq_len + 1 = {cfg.seq_len + 1} "
                                    "tokens in every shard; lower seq_len or add data")
    val_sampler = WindowSampler(data.split("val"), cfg.seq_len, cfg.seed, salt=1)
    if val_sampler.total == 0:
        log(f"note: the validation split of {cfg.data} is shorter than seq_len + 1; no validation loss")

    model = build_model(cfg, data, device)
    n_params = sum(p.numel() for p in model.parameters())
    sharded = info.enabled and cfg.parallel == "fsdp"
    forward_model = distributed.wrap(model, info, device, cfg.parallel)  # FSDP shards `model` itself
    optimizer = make_optimizer(model, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay,
                               device=device)
    schedule = WarmupCosine(cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)

    start = 0
    checkpoint = resume.latest(out) if cfg.resume else None
    if checkpoint is not None:
        meta = resume.restore(checkpoint, model, optimizer, distributed.load_sharded_state if sharded else None)
        start = meta["step"]
        log(f"resumed from {checkpoint} (step {start})")
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out / "train_config.json", json.dumps(dataclasses.asdict(cfg), indent=2))
        _truncate_metrics(out / "metrics.jsonl", start)
    distributed.barrier(info)

    if cfg.compile and sharded:
        log("note: compile is not used with parallel = \"fsdp\" (untested here); training eager")
    loss_fn = compiled(lm_loss, log) if cfg.compile and not sharded else lm_loss
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else \
        contextlib.nullcontext
    tokens_per_step = cfg.batch_size * cfg.seq_len
    log(f"training {n_params / 1e6:.2f}M parameters on {device} ×{info.world_size}: {cfg.max_steps} steps of "
        f"{cfg.batch_size} × {cfg.seq_len} tokens (micro-batch {micro}, accumulation {accum}); run folder {out}")

    end = cfg.max_steps if stop_at is None else min(cfg.max_steps, stop_at)
    if cfg.compile and not sharded and start < end:
        log("compiling the training step (torch.compile: a minute or so on a CPU; compile = false skips it)")
    last_loss, last_val = float("nan"), None
    t_log, steps_since = time.perf_counter(), 0
    metrics = open(out / "metrics.jsonl", "a", encoding="utf-8") if info.is_main else None  # noqa: SIM115
    try:
        for step in range(start, end):
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = train_sampler.batch(step, cfg.batch_size)[info.rank * per_rank:(info.rank + 1) * per_rank]
            loss_sum = 0.0
            for m in range(accum):
                x = torch.from_numpy(rows[m * micro:(m + 1) * micro]).to(device, non_blocking=True)  # (B, T+1)
                with distributed.gradient_sync(forward_model, info, cfg.parallel, sync=m == accum - 1):
                    with autocast():
                        loss = loss_fn(forward_model, x) / accum
                    loss.backward()
                loss_sum += loss.item()
            grad_norm = distributed.clip_grad_norm(model, cfg.grad_clip) if cfg.grad_clip > 0 else float("nan")
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            last_loss = distributed.mean(loss_sum, info, device)
            done = step + 1
            steps_since += 1

            if done % cfg.log_every == 0 or done == end:
                now = time.perf_counter()
                dt = now - t_log
                tok_s = steps_since * tokens_per_step / max(dt, 1e-9)
                eta = (cfg.max_steps - done) * dt / steps_since
                log(f"step {done}/{cfg.max_steps} | loss {last_loss:.4f} | lr {lr:.2e} | {tok_s:,.0f} tok/s | "
                    f"ETA {_fmt_time(eta)}")
                if metrics:
                    metrics.write(json.dumps({"step": done, "loss": last_loss, "lr": lr, "grad_norm": grad_norm,
                                              "tokens_per_s": round(tok_s, 1)}) + "\n")
                    metrics.flush()
                t_log, steps_since = now, 0
            if val_sampler.total and ((cfg.eval_every and done % cfg.eval_every == 0) or done == cfg.max_steps):
                last_val = evaluate(model, val_sampler, cfg, info, device, autocast)
                log(f"step {done}: val loss {last_val:.4f}, perplexity {math.exp(min(last_val, 50)):.2f}")
                if metrics:
                    metrics.write(json.dumps({"step": done, "val_loss": last_val,
                                              "val_ppl": math.exp(min(last_val, 50))}) + "\n")
                    metrics.flush()
                t_log = time.perf_counter()
            if (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or done == end:
                model_sd, optimizer_sd = distributed.full_state(model, optimizer, cfg.parallel, info)
                if info.is_main:
                    state = {"model": model.config.to_dict(), "train_config": dataclasses.asdict(cfg),
                             "data_position": {"sampler": SAMPLER, "seed": cfg.seed, "next_batch": done,
                                               "tokens_seen": done * tokens_per_step}}
                    resume.save(out, done, resume.model_tensors(model_sd, model.config.tie_embeddings), optimizer_sd,
                                state, keep=cfg.keep_checkpoints)
                distributed.barrier(info)
                t_log = time.perf_counter()
    finally:
        if metrics:
            metrics.close()

    finished = end == cfg.max_steps
    summary = {"steps": end, "finished": finished, "loss": last_loss, "val_loss": last_val, "out": str(out),
               "parameters": n_params}
    model_sd = distributed.full_state(model, optimizer, cfg.parallel, info)[0] if finished else {}
    if info.is_main:
        plot_metrics(out)
        if finished:
            export(model.config, model_sd, data, out, cfg)
            if cfg.name:
                summary["registered"] = str(register(out, cfg.name))
                log(f"registered as {cfg.name!r}: luoxia generate --model {cfg.name} ...")
    distributed.barrier(info)
    return summary


def export(config: TransformerConfig, model_state: dict[str, torch.Tensor], data: TokenData, out: Path,
           cfg: TrainConfig) -> None:
    """The run folder becomes a Hugging Face model folder (and optionally holds model.gguf)."""
    from luoxia.text.formats.hf import save_hf

    tokenizer = data.tokenizer()
    state = {k: v.detach().cpu() for k, v in model_state.items()}
    save_hf(out, config, state, tokenizer, name=cfg.name or out.name)
    if cfg.export_gguf:
        from luoxia.text.formats.gguf import write_gguf

        write_gguf(config, state, tokenizer, out / "model.gguf", name=cfg.name or out.name)


def register(run_dir: Path, name: str) -> Path:
    """Copy the exported model to $LUOXIA_HOME/models/<name>/, replacing an older one whole."""
    final = trained_models_dir() / name
    with atomic.atomic_dir(final) as tmp:
        for f in EXPORT_FILES:
            shutil.copy2(run_dir / f, tmp / f)
    return final


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric rows after the checkpoint's step (they will be recomputed)."""
    if not path.is_file():
        return
    rows = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step]
    atomic.write_text(path, "".join(r + "\n" for r in rows))


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_metrics(run_dir: Path) -> Path | None:
    """loss.png: training loss per step and validation loss at each evaluation."""
    rows = read_metrics(run_dir / "metrics.jsonl")
    train_rows = [r for r in rows if "loss" in r]
    val_rows = [r for r in rows if "val_loss" in r]
    if not train_rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot([r["step"] for r in train_rows], [r["loss"] for r in train_rows], label="train loss", lw=1.2)
    if val_rows:
        ax.plot([r["step"] for r in val_rows], [r["val_loss"] for r in val_rows], "o-", label="validation loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = run_dir / "loss.png"
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
