"""The run config: one dataclass, filled from a TOML file (`luoxia train text --config run.toml`).

    data = "runs/zh-data"          # a folder made by `luoxia data prepare`
    out = "runs/zh-gpt"            # the run folder: checkpoints, metrics, loss curve, the final model
    name = "zh-gpt"                # also register the final model as $LUOXIA_HOME/models/zh-gpt
    max_steps = 2000
    [model]
    dim = 256
    n_layers = 4

Every key has its default here and nowhere else; an unknown key is a one-line error. Relative paths
(`data`, `out`, and `init` when it is a path) are relative to the TOML file's folder, not the current one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from luoxia.core.config import from_dict, load_toml
from luoxia.core.errors import InvalidParameterError
from luoxia.text.model_config import PRESETS, TransformerConfig
from luoxia.train.distributed import PARALLEL


@dataclasses.dataclass
class ModelSpec:
    """The network to train from scratch (ignored when `init` names a model to fine-tune)."""

    preset: str = ""  # a name from text.model_config.PRESETS; the fields below then override nothing
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 0  # 0: n_heads
    ffn_dim: int = 0  # 0: about 8/3 · dim, rounded up to a multiple of 32 (SwiGLU's usual width)
    max_seq_len: int = 0  # 0: the run's seq_len
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    tie_embeddings: bool = True
    init_std: float = 0.02

    def build(self, vocab_size: int, seq_len: int) -> TransformerConfig:
        if self.preset:
            if self.preset not in PRESETS:
                raise InvalidParameterError(f"unknown model preset {self.preset!r}; presets: {', '.join(PRESETS)}")
            return TransformerConfig(**{**PRESETS[self.preset], "vocab_size": vocab_size})
        for key in ("dim", "n_layers", "n_heads"):
            if getattr(self, key) < 1:
                raise InvalidParameterError(f"model.{key} must be at least 1, got {getattr(self, key)}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise InvalidParameterError(f"model.dim {self.dim} must split into n_heads {self.n_heads} heads of even "
                                        "width; change dim or n_heads")
        kv = self.n_kv_heads or self.n_heads
        if self.n_heads % kv:
            raise InvalidParameterError(f"model.n_heads {self.n_heads} must be a multiple of n_kv_heads {kv}")
        ffn = self.ffn_dim or -(-int(8 * self.dim / 3) // 32) * 32
        return TransformerConfig(
            vocab_size=vocab_size, dim=self.dim, n_layers=self.n_layers, n_heads=self.n_heads, n_kv_heads=kv,
            ffn_dim=ffn, max_seq_len=self.max_seq_len or seq_len, norm_eps=self.norm_eps, rope_base=self.rope_base,
            tie_embeddings=self.tie_embeddings, arch="llama",
        )


@dataclasses.dataclass
class TrainConfig:
    data: str = ""  # a prepared data folder (manifest.json, shards, tokenizer.json)
    out: str = ""  # the run folder
    name: str = ""  # register the final model under this short name ("" = do not register)
    init: str = ""  # "" trains from scratch; else a model to fine-tune (name, HF folder, .gguf, run folder)
    model: ModelSpec = dataclasses.field(default_factory=ModelSpec)
    seed: int = 0
    seq_len: int = 256
    batch_size: int = 32  # sequences per optimizer step, over all processes (kept constant under torchrun)
    micro_batch_size: int = 0  # sequences per forward pass and process; 0: batch_size / processes
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 turns clipping off
    eval_every: int = 100  # 0: only at the end
    eval_batches: int = 10
    checkpoint_every: int = 100  # 0: only at the end
    keep_checkpoints: int = 2
    log_every: int = 10
    device: str = "auto"
    compile: bool = True  # torch.compile forward + loss (about a minute to start on a CPU; falls back to eager
    #                        with a note where it cannot compile)
    parallel: str = "ddp"  # under torchrun: "ddp" (replicas) or "fsdp" (sharded parameters and optimizer state)
    resume: bool = True  # continue from the newest checkpoint in `out` when there is one
    export_gguf: bool = False  # also write model.gguf into the run folder

    def validate(self) -> None:
        if not self.data:
            raise InvalidParameterError("the config has no `data`; set it to a folder made by `luoxia data prepare`")
        if not self.out:
            raise InvalidParameterError("the config has no `out`; set it to the run folder to write")
        for key in ("batch_size", "seq_len", "max_steps", "log_every", "eval_batches"):
            if getattr(self, key) < 1:
                raise InvalidParameterError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("micro_batch_size", "warmup_steps", "eval_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, key) < 0:
                raise InvalidParameterError(f"{key} must not be negative, got {getattr(self, key)}")
        if not self.lr > 0 or not 0 <= self.min_lr <= self.lr:
            raise InvalidParameterError(f"need 0 < lr and 0 <= min_lr <= lr, got lr {self.lr}, min_lr {self.min_lr}")
        if self.parallel not in PARALLEL:
            raise InvalidParameterError(f"parallel must be one of {', '.join(PARALLEL)}, got {self.parallel!r}")
        if self.name and ("/" in self.name or self.name.startswith(".")):
            raise InvalidParameterError(f"name {self.name!r} must be a plain folder name, e.g. tang-poet")


def load_train_config(path: str) -> TrainConfig:
    """The run config in TOML file `path`, its relative paths resolved against the file's folder."""
    cfg = from_dict(TrainConfig, load_toml(path), where=str(path))
    base = Path(path).expanduser().parent
    cfg.data, cfg.out = _beside(base, cfg.data), _beside(base, cfg.out)
    cfg.init = _beside(base, cfg.init, name_ok=True)
    cfg.validate()
    return cfg


def _beside(base: Path, value: str, name_ok: bool = False) -> str:
    """`value` as a path relative to `base` (absolute and "~" paths unchanged; "" stays "").

    With `name_ok`, a plain name with no such entry in `base` is kept as it is: a registered model
    name such as "tang-poet" or "smollm2".
    """
    if not value:
        return value
    path = Path(value).expanduser()
    if path.is_absolute():
        return str(path)
    if name_ok and len(path.parts) == 1 and not (base / path).exists():
        return value
    return str(base / path)
