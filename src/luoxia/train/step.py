"""The pieces of one training step that the loop and `benchmarks/train_throughput.py` share.

    loss_fn = compiled(lm_loss, log)          # forward + cross-entropy, one torch.compile graph
    optimizer = make_optimizer(model, weight_decay=0.1, lr=1e-3, betas=(0.9, 0.95), device=device)
    loss = loss_fn(model, x); loss.backward(); clip; optimizer.step()

Measured on the project's 2-core CPU (docs/pretraining.md, "Training speed"): compiling forward and
loss together fuses the norms, rotary embeddings, SwiGLU and the softmax of the cross-entropy, which
is most of a small model's step besides its matmuls; the fused AdamW kernel is several times
faster than the default per-tensor one on the CPU as on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from luoxia.core.compile import compile_or_eager


def lm_loss(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy, in float32, of (B, T+1) token windows: the model reads x[:, :-1]
    and predicts x[:, 1:]."""
    logits = model(x[:, :-1])  # (B, T, V)
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


def make_optimizer(model: torch.nn.Module, *, lr: float, betas: tuple[float, float], weight_decay: float,
                   device: torch.device) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter 2019) with no weight decay on norms and biases, the fused kernel
    where this PyTorch has one for `device` (CPU and CUDA)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):  # no fused kernel for this device or build
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8)


def compiled(fn: Callable, log: Callable[[str], None]) -> Callable:
    """`torch.compile(fn)`, or `fn` itself (with a note) where compiling fails: see core.compile."""
    return compile_or_eager(fn, log, "training (compile = false skips the attempt)")
