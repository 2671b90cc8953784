"""Training checkpoints of image models, and the exported model folder; safetensors + JSON, no pickles.

    run/checkpoints/step_000500/
        model.safetensors   every network of the run, keys prefixed by its role ("net.", "ema.", "disc.")
        state.safetensors   optimizer moments ("opt.<name>.<index>.<key>") and torch/numpy RNG states
        state.json          version, step, the run config, optimizer hyper-parameters, python RNG state
    run/model.safetensors + run/config.json   the exported sampling network (EMA weights), see `formats`

Written under a temporary name and renamed when complete (`luoxia.core.atomic.atomic_dir`), so a
kill leaves the previous checkpoint intact and the newest visible one always loads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from luoxia.core.atomic import atomic_dir
from luoxia.core.errors import InvalidParameterError, UserFileError
from luoxia.train.resume import CHECKPOINT_VERSION as VERSION
from luoxia.train.resume import PREFIX, list_checkpoints, load, rng_state, set_rng_state


def save(run_dir: Path, step: int, modules: dict[str, torch.nn.Module],
         optimizers: dict[str, torch.optim.Optimizer], state: dict, keep: int = 2) -> Path:
    from safetensors.torch import save_file

    final = Path(run_dir) / "checkpoints" / f"{PREFIX}{step:06d}"
    tensors: dict[str, torch.Tensor] = {}
    groups = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        for index, values in sd["state"].items():
            for key, value in values.items():
                value = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"opt.{name}.{index}.{key}"] = value.detach().cpu().contiguous()
        groups[name] = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in sd["param_groups"]]
    rng_tensors, rng_meta = rng_state()
    tensors.update(rng_tensors)
    weights = {f"{role}.{k}": v.detach().cpu().contiguous() for role, m in modules.items()
               for k, v in m.state_dict().items()}
    meta = {"version": VERSION, "step": step, "optimizer_groups": groups, "rng": rng_meta, **state}
    try:
        with atomic_dir(final) as tmp:
            save_file(weights, tmp / "model.safetensors")
            save_file(tensors, tmp / "state.safetensors")
            (tmp / "state.json").write_text(json.dumps(meta, indent=1))
            for f in tmp.iterdir():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
    except OSError as e:
        raise UserFileError(f"cannot write checkpoint {final} ({e.strerror or e}); free disk space or change "
                            "--out, then resume from the previous checkpoint") from None
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def restore(path: Path, modules: dict[str, torch.nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Load checkpoint `path` into the modules and optimizers, restore RNG states; returns state.json."""
    weights, state, meta = load(path)
    for role, m in modules.items():
        own = m.state_dict()
        theirs = {k[len(role) + 1:]: v for k, v in weights.items() if k.startswith(role + ".")}
        if set(own) != set(theirs) or any(own[k].shape != theirs[k].shape for k in own):
            raise InvalidParameterError(f"checkpoint {path} holds a different {role} network than these settings "
                                        "build; use the run's own settings or a new --out folder")
        m.load_state_dict(theirs)
    for name, opt in optimizers.items():
        per_param: dict[int, dict] = {}
        prefix = f"opt.{name}."
        for key, value in state.items():
            if key.startswith(prefix):
                index, field = key[len(prefix):].split(".", 1)
                per_param.setdefault(int(index), {})[field] = value
        groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["optimizer_groups"][name]]
        opt.load_state_dict({"state": per_param, "param_groups": groups})
    set_rng_state(state, meta["rng"])
    return meta
