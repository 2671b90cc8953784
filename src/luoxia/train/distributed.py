"""Data parallelism under `torchrun`: DDP (Li et al. 2020) or FSDP (Zhao et al. 2023); gloo on CPU,
NCCL on GPU.

    torchrun --nproc_per_node=2 -m luoxia.cli.main train text --config run.toml   # parallel = "ddp" (default)

Every rank builds the same global batch (the sampler depends on the step only) and takes its
slice, so the global batch, and therefore the loss curve, does not depend on the number of
processes. Without torchrun's environment everything here is a no-op.

    ddp    every rank holds the whole model and optimizer; gradients are all-reduced
    fsdp   `parallel = "fsdp"`: parameters, gradients and AdamW moments are sharded (FSDP2's
           `fully_shard` on each transformer block and on the root), for models that do not fit one
           device. Checkpoints and the exported model are gathered into the one-process layout, so a
           checkpoint resumes under any number of processes, and either kind of parallelism.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

PARALLEL = ("ddp", "fsdp")


@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes; returns this process's place and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def mean(value: float, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item() / info.world_size


def total(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, info: DistInfo, device: torch.device, parallel: str) -> nn.Module:
    """The module a training step calls: `model` itself in one process, DDP around it, or (FSDP) `model`
    sharded in place, its parameters becoming DTensors; build the optimizer after this."""
    if not info.enabled:
        return model
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.layers:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


@contextlib.contextmanager
def gradient_sync(module: nn.Module, info: DistInfo, parallel: str, sync: bool) -> Iterator[None]:
    """Skip the gradient all-reduce (or reduce-scatter) on all but the last micro-batch of a step."""
    if not info.enabled or sync:
        yield
    elif parallel == "fsdp":
        module.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            module.set_requires_gradient_sync(True)
    else:
        with module.no_sync():
            yield


def clip_grad_norm(model: nn.Module, max_norm: float) -> float:
    """Clip the global gradient norm; returns it (a sharded norm is gathered first)."""
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    return (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).item()


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer, parallel: str,
               info: DistInfo) -> tuple[dict, dict]:
    """Model and optimizer state dicts in the one-process layout (optimizer state keyed by parameter
    index). Under FSDP every rank must call this: it gathers the shards onto rank 0's CPU (other ranks
    get empty dicts)."""
    if not (info.enabled and parallel == "fsdp"):
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd = get_model_state_dict(model, options=options)
    opt = get_optimizer_state_dict(model, optimizer, options=options)  # keyed by parameter name
    if not info.is_main:
        return {}, {}  # the gathered tensors land on rank 0 only
    index = {name: i for i, name in enumerate(n for g in opt["param_groups"] for n in g["params"])}
    return model_sd, {"state": {index[n]: v for n, v in opt["state"].items()},
                      "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in opt["param_groups"]]}


def load_sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer, model_sd: dict,
                       optimizer_sd: dict) -> None:
    """The inverse of `full_state` under FSDP: every rank reads the whole state and keeps its shards."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_sd, options=options)
    names = {id(p): n for n, p in model.named_parameters()}
    order = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    set_optimizer_state_dict(model, optimizer, {
        "state": {order[i]: v for i, v in optimizer_sd["state"].items()},
        "param_groups": [{**g, "params": [order[i] for i in g["params"]]} for g in optimizer_sd["param_groups"]],
    }, options=options)
