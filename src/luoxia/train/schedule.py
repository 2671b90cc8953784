"""The learning-rate schedule: linear warmup, then cosine decay to a floor (Loshchilov & Hutter 2017).

    lr(s) = lr_max · (s + 1) / warmup                                   s < warmup
    lr(s) = lr_min + ½ (lr_max − lr_min) (1 + cos(π · p)),  p = (s − warmup) / (total − warmup)

A function of the step alone, so resuming needs only the step.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class WarmupCosine:
    lr: float
    min_lr: float
    warmup_steps: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * progress))
