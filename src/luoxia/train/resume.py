"""Checkpoints that resume training bit-exactly, written atomically, holding no pickles.

    run/checkpoints/step_000100/
        model.safetensors     parameters (float32, tied output weight left out)
        state.safetensors     optimizer tensors (AdamW moments and steps), torch/numpy RNG states
        state.json            version, step, model config, optimizer hyper-parameters, python RNG
                              state, data position, metrics so far

The folder is written under a temporary name (".step_000100.tmp...") and renamed when every
file is complete and synced; a kill before the rename leaves only a temporary folder, which
`latest` ignores (and the next save removes), so the newest visible checkpoint always loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from luoxia.core.errors import CorruptFileError, InvalidParameterError, UserFileError

CHECKPOINT_VERSION = 1
PREFIX = "step_"


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    d = checkpoints_dir(run_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
                  and p.name[len(PREFIX):].isdigit() and (p / "state.json").is_file())


def latest(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
    version, internal, gauss = random.getstate()
    return tensors, {"numpy": [kind, int(pos), int(has_gauss), float(cached)],
                     "python": [version, list(internal), gauss]}


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def model_tensors(model_state: dict[str, torch.Tensor], tie_embeddings: bool) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint stores: the tied output weight (the embedding's) left out."""
    return {k: v.detach().contiguous() for k, v in model_state.items()
            if not (tie_embeddings and k == "output.weight")}


def save(run_dir: Path, step: int, model_state: dict[str, torch.Tensor], optimizer_state: dict, state: dict,
         keep: int = 2) -> Path:
    """Write checkpoint `step` from the model's tensors (`model_tensors`) and the optimizer's
    `state_dict()`; on any failure (disk full included) nothing partial stays visible."""
    from safetensors.torch import save_file

    parent = checkpoints_dir(run_dir)
    final = parent / f"{PREFIX}{step:06d}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".{PREFIX}*"):  # temporaries of killed writes
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise UserFileError(f"cannot write checkpoint to {parent} ({e.strerror or e}); check the folder") from None
    try:
        opt = optimizer_state
        tensors: dict[str, torch.Tensor] = {}
        for index, values in opt["state"].items():
            for key, value in values.items():
                if not torch.is_tensor(value):
                    value = torch.tensor(value)
                tensors[f"optimizer.{index}.{key}"] = value.detach().contiguous()
        rng_tensors, rng_meta = rng_state()
        tensors.update(rng_tensors)
        groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in opt["param_groups"]]
        meta = {"version": CHECKPOINT_VERSION, "step": step, "optimizer_groups": groups, "rng": rng_meta, **state}
        save_file(model_state, tmp / "model.safetensors")
        save_file(tensors, tmp / "state.safetensors")
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise UserFileError(
                f"cannot write checkpoint {final} ({e.strerror or e}); free disk space or change `out`, "
                "then resume from the previous checkpoint"
            ) from None
        raise
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    with contextlib.suppress(OSError):
        fd = os.open(parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return final


def load(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict]:
    """(model tensors, state tensors, state.json) of a checkpoint folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads((path / "state.json").read_text())
        model = load_file(path / "model.safetensors")
        state = load_file(path / "state.safetensors")
    except (OSError, ValueError, SafetensorError) as e:
        raise CorruptFileError(f"checkpoint {path} cannot be read ({e}); delete it to resume from an earlier one") \
            from None
    if meta.get("version") != CHECKPOINT_VERSION:
        raise CorruptFileError(f"checkpoint {path} has version {meta.get('version')!r}, this luoxia reads "
                               f"{CHECKPOINT_VERSION}; start a new run")
    return model, state, meta


def restore(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
            load_state: Callable[[torch.nn.Module, torch.optim.Optimizer, dict, dict], None] | None = None) -> dict:
    """Load checkpoint `path` into `model` and `optimizer`, restore RNG states; returns state.json.

    `load_state(model, optimizer, model_state, optimizer_state)` puts the one-process state dicts in
    place (the default copies them; sharded models bring their own)."""
    model_sd, state, meta = load(path)
    tied = bool(getattr(model.config, "tie_embeddings", False))
    ours = {k: v.shape for k, v in model.state_dict().items() if not (tied and k == "output.weight")}
    if set(ours) != set(model_sd) or any(ours[k] != model_sd[k].shape for k in ours):
        raise InvalidParameterError(
            f"checkpoint {path} holds a model of another shape ({_describe(meta.get('model'))}) than the config "
            f"asks for ({_describe(model.config.to_dict())}); use the same [model] settings or a new `out` folder"
        )
    if tied:
        model_sd["output.weight"] = model_sd["tok_embeddings.weight"]
    opt_state: dict[int, dict] = {}
    for key, value in state.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["optimizer_groups"]]
    if len(groups) != len(optimizer.param_groups):
        raise InvalidParameterError(f"checkpoint {path} has another optimizer layout; start a new `out` folder")
    (load_state or _load_state)(model, optimizer, model_sd, {"state": opt_state, "param_groups": groups})
    set_rng_state(state, meta["rng"])
    return meta


def _load_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, model_state: dict,
                optimizer_state: dict) -> None:
    with torch.no_grad():
        for k, v in model.state_dict().items():
            v.copy_(model_state[k])
    optimizer.load_state_dict(optimizer_state)


def _describe(cfg: dict | None) -> str:
    if not cfg:
        return "unknown"
    return ", ".join(f"{k} {cfg[k]}" for k in ("vocab_size", "dim", "n_layers", "n_heads", "ffn_dim") if k in cfg)
