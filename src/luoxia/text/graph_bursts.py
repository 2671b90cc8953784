"""Greedy decoding several tokens per CUDA-graph replay: the GPU runs `steps` one-token steps back to back.

A graphed step (`text.cuda_graph`) still comes back to Python after every token: the next token is
picked, copied to the host, checked for EOS and fed back, and the GPU waits meanwhile, then for the
graph's launch. On an H200 SmolLM2-135M's compiled step takes 1.05 ms of GPU time, and decoding
through it 1.69 ms a token (593 tok/s). Greedy decoding without logit processors needs
none of that on the host: the argmax, feeding the token back, moving the write position and the mask
are GPU ops. So one graph records `steps` of them, and the host reads `steps` tokens per replay.
The graph feeds itself (its last token and position are where its next replay starts), so the next
burst is queued before the host reads this one's tokens: the GPU never waits for Python, nor for the
launch of a graph of some 3,000 kernels. Measured there: 866 against 718 tok/s through the compiled
step in the same run, a token every 1.155 ms against 1.167 ms for the step replayed alone
(benchmarks/README.md, `text_decode_gpu.py`).

What it costs: tokens reach the host in bursts of `steps` (8 by default: a few milliseconds on a GPU),
and a row that ends (EOS, `max_new_tokens`) has computed up to `2 * steps - 1` tokens that are dropped
(the rest of its burst and the queued one). Prompts of several lengths are left-padded as in
`decode_steps`: each row's positions count its own tokens, and its padding columns stay masked. With
`capture=False` (the default off CUDA) the same buffers and ops run without a graph, which is how the
CPU tests check this logic against `decode_steps`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import torch

from luoxia.text.cuda_graph import BUCKET, capture
from luoxia.text.generate import left_pad, prefill_positions_and_mask
from luoxia.text.model import Transformer


class _Burst:
    """One (batch size, cache length): caches, buffers, and the graph of `steps` greedy steps."""

    def __init__(self, model: Transformer, forward: Callable[..., torch.Tensor], batch_size: int, max_len: int,
                 steps: int, capture: bool):
        device = model.tok_embeddings.weight.device
        self.forward, self.steps, self.capture = forward, steps, capture
        self.caches = model.new_caches(batch_size, max_len)
        self.tokens = torch.zeros((batch_size, 1), dtype=torch.long, device=device)
        self.start = torch.zeros((), dtype=torch.long, device=device)
        self.positions = torch.zeros((batch_size, 1), dtype=torch.long, device=device)
        # The mask is derived in the graph each step, but into a buffer shaped as the graphed step's, so that
        # both call the compiled forward with the same arguments (one compile serves both).
        self.mask = torch.zeros((batch_size, 1, 1, max_len), dtype=torch.bool, device=device)
        self.real = torch.ones((batch_size, max_len), dtype=torch.bool, device=device)  # False: a prompt's padding
        self.columns = torch.arange(max_len, device=device)
        self.out = torch.zeros((batch_size, steps), dtype=torch.long, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        # Two host copies of `out` and their events: one burst's tokens are read while the next one runs.
        self.host = [torch.zeros((batch_size, steps), dtype=torch.long, pin_memory=capture) for _ in range(2)]
        self.ready = [torch.cuda.Event() if capture else None for _ in range(2)]

    def _run_steps(self) -> None:
        for i in range(self.steps):
            self.mask.copy_(((self.columns <= self.start) & self.real)[:, None, None])
            logits = self.forward(self.tokens, self.caches, self.start, self.positions, self.mask)
            next_tokens = logits[:, -1].argmax(-1)
            self.out[:, i] = next_tokens
            self.tokens.copy_(next_tokens[:, None])
            self.start += 1
            self.positions += 1

    def set(self, tokens: torch.Tensor, start: int, real: torch.Tensor | None = None) -> None:
        """Feed `tokens` (B,) at column `start` to the next burst; `real` (B, start) marks the prompts' real
        tokens (None: no padding)."""
        self.tokens.copy_(tokens[:, None])
        self.start.fill_(start)
        self.real.fill_(True)
        if real is None:
            self.positions.fill_(start)
        else:
            self.real[:, :start] = real
            self.positions.copy_(real.sum(-1, keepdim=True))  # each row's own count of tokens before this one

    def launch(self, slot: int) -> None:
        """Queue the next burst; its tokens go to host copy `slot` (read them with `read(slot)`)."""
        if not self.capture:
            self._run_steps()
        else:
            if self.graph is None:
                self._capture()
            self.graph.replay()
        self.host[slot].copy_(self.out, non_blocking=self.capture)
        if self.capture:
            self.ready[slot].record()

    def read(self, slot: int) -> torch.Tensor:
        """The tokens (B, steps) of the burst launched into `slot`, once it has run."""
        if self.capture:
            self.ready[slot].synchronize()
        return self.host[slot]

    def _capture(self) -> None:
        """The warm-ups advance the buffers, so each starts from, and the capture records from, the state `set`
        left; their cache writes are the real burst's and are written again by the replay."""
        saved = self.tokens.clone(), self.start.clone(), self.positions.clone()

        def restore() -> None:
            for buffer, value in zip((self.tokens, self.start, self.positions), saved, strict=True):
                buffer.copy_(value)

        self.graph, _ = capture(self._run_steps, after_warm_up=restore)
        restore()  # capturing runs nothing, but keep the state exact whatever the backend


class GraphBursts:
    """Greedy generation, `steps` tokens per replay of a CUDA graph (see the module notes).

    `forward` is what the graph records (the model, or a `torch.compile` of it with static shapes, as
    `text.compiled.compiled_decode_step` makes); `capture` defaults to whether the model is on CUDA."""

    def __init__(self, model: Transformer, forward: Callable[..., torch.Tensor] | None = None, steps: int = 8,
                 capture: bool | None = None):
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.model, self.steps = model, steps
        self.forward = model if forward is None else forward
        self.capture = model.tok_embeddings.weight.device.type == "cuda" if capture is None else capture
        self._bursts: dict[tuple[int, int], _Burst] = {}
        self.lock = threading.Lock()  # callers that may generate concurrently hold it (one generation at a time)

    def _burst(self, batch_size: int, max_len: int) -> _Burst:
        key = (batch_size, -(-max_len // BUCKET) * BUCKET)
        if key not in self._bursts:
            self._bursts[key] = _Burst(self.model, self.forward, *key, steps=self.steps, capture=self.capture)
        return self._bursts[key]

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, eos_ids: Sequence[int] = (),
                 pad_id: int = 0) -> Iterator[torch.Tensor]:
        """Yield the next token of every row (B,), on the host, for up to `max_new_tokens` steps, as
        `generate.decode_steps` does for greedy decoding: prompts are left-padded to the longest, rows that
        produced an EOS get `pad_id` from then on, and generation ends when all rows have."""
        if not prompts or min(len(p) for p in prompts) == 0:
            raise ValueError("graph bursts need at least one prompt and at least one token in each")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        device = self.model.tok_embeddings.weight.device
        length = max(len(p) for p in prompts)
        tokens, real = left_pad(prompts, length, pad_id)
        tokens, real = tokens.to(device), real.to(device)
        positions, mask = prefill_positions_and_mask(real, length)
        padded = mask is not None
        # Bursts may run up to 2 * steps - 1 columns past the last token kept (module notes).
        burst = self._burst(len(prompts), length + max_new_tokens + 2 * self.steps)
        logits = self.model(tokens, burst.caches, 0, positions, mask, last_only=True)
        next_tokens = logits[:, -1].argmax(-1)
        burst.set(next_tokens, length, real if padded else None)
        eos = torch.tensor(list(eos_ids), dtype=torch.long)
        finished = torch.zeros(len(prompts), dtype=torch.bool)
        produced, pending, slot = 0, next_tokens.cpu()[:, None], 0
        if max_new_tokens > 1:
            burst.launch(slot)
        while True:
            for i in range(pending.shape[1]):
                row = torch.where(finished, pad_id, pending[:, i])
                yield row
                produced += 1
                finished |= torch.isin(row, eos)
                if produced == max_new_tokens or bool(finished.all()):
                    return
            if produced + self.steps < max_new_tokens:  # the burst after the launched one is needed too
                burst.launch(1 - slot)
            pending = burst.read(slot)
            slot = 1 - slot
