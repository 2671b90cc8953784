"""The one-token decode step replayed as a CUDA graph (`TextModel.load(device="cuda", compile=True)`).

On a GPU a small model's step is launch-bound: SmolLM2-135M's 30 layers run some 1,100 tiny kernels
(370 once `torch.compile` fuses them), and launching each from Python takes longer than running
it: on an H200, 49 tok/s eager, 374 with this graph, 593 compiled and graphed (benchmarks/README.md).
A CUDA graph records the step's kernels once and replays them all with one launch (greedy decoding
goes further, several steps per graph: `text.graph_bursts`). A graph fixes shapes and addresses, so
the graphed step differs from the plain one in three ways:

- it attends over the whole preallocated cache (its length rounded up to `BUCKET`, so that
  generations of other lengths reuse the graph), and a boolean mask hides the unwritten columns;
- the write position is a tensor (`KVCache.update` then writes with `index_copy_`);
- tokens, positions, the write position and the mask are copied into buffers the graph reads; its logits
  come back in a buffer the next replay overwrites.

The caches belong to the graph: `decode_steps` asks this object for them (`new_caches`) and gives
them back when it ends (`release`). A generation that starts while another holds them gets fresh
caches, and calls the graph cannot serve (caches it does not own: continuous batching; several
tokens at once: a speculative check) run the plain forward. With `capture=False` (the default off
CUDA) the same buffers and masks are used but the forward runs each step, which is how the CPU
tests check this logic.

The capture follows PyTorch's recipe (warm-up runs on a side stream, then `torch.cuda.graph`); it is
taken at a shape's first step, after the prompt is in the cache, so the warm-up runs compute that
real step. Like gpt-fast's `mode="reduce-overhead"` (which leaves the graphs to Inductor), but
explicit, so that the caches need no special marking and one graph serves every generation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import torch

from luoxia.text.kv_cache import KVCache
from luoxia.text.model import Transformer

T = TypeVar("T")
BUCKET = 256  # cache lengths are rounded up to a multiple of this: one graph per (batch, bucket)


def capture(run: Callable[[], T],
            after_warm_up: Callable[[], None] = lambda: None) -> tuple[torch.cuda.CUDAGraph, T]:
    """PyTorch's recipe: `run` twice on a side stream (compiles, with torch.compile, and sets up cuBLAS; each
    followed by `after_warm_up`), then once captured. The graph, and what the captured `run` returned (its
    output buffers, which each replay overwrites)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            run()
            after_warm_up()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run()
    return graph, out


class _Graph:
    """One (batch size, cache length): its caches, input buffers and, once captured, its graph."""

    def __init__(self, model: Transformer, forward: Callable[..., torch.Tensor], batch_size: int, max_len: int,
                 capture: bool):
        device = model.tok_embeddings.weight.device
        self.forward, self.capture = forward, capture
        self.caches = model.new_caches(batch_size, max_len)
        self.tokens = torch.zeros((batch_size, 1), dtype=torch.long, device=device)
        self.positions = torch.zeros((batch_size, 1), dtype=torch.long, device=device)
        self.start = torch.zeros((), dtype=torch.long, device=device)
        self.mask = torch.zeros((batch_size, 1, 1, max_len), dtype=torch.bool, device=device)
        self.columns = torch.arange(max_len, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None

    def _forward(self) -> torch.Tensor:
        return self.forward(self.tokens, self.caches, self.start, self.positions, self.mask)

    def run(self, tokens: torch.Tensor, start: int, positions: torch.Tensor | None,
            mask: torch.Tensor | None) -> torch.Tensor:
        """The step's logits (B, 1, vocab) for `tokens` at column `start` (see `Transformer.forward`)."""
        self.tokens.copy_(tokens)
        self.start.fill_(start)
        if positions is None:
            self.positions.fill_(start)
        else:
            self.positions.copy_(positions)
        if mask is None:  # causal, no padding: every written column
            self.mask.copy_((self.columns <= start).expand_as(self.mask))
        else:  # (B, 1, 1, start + 1), the padding mask of decode_steps
            self.mask.zero_()
            self.mask[..., :start + 1] = mask
        if not self.capture:
            return self._forward()
        if self.graph is None:
            self.graph, self.logits = capture(self._forward)
        self.graph.replay()
        return self.logits


class GraphedDecodeStep:
    """A one-token forward (`decode_steps`' `one_token_forward`) that replays a CUDA graph per shape.

    `forward` is what the graph records (the model, or a `torch.compile` of it with static shapes);
    `capture` defaults to whether the model is on CUDA."""

    def __init__(self, model: Transformer, forward: Callable[..., torch.Tensor] | None = None,
                 capture: bool | None = None):
        self.model = model
        self.forward = model if forward is None else forward
        self.capture = model.tok_embeddings.weight.device.type == "cuda" if capture is None else capture
        self._graphs: dict[tuple[int, int], _Graph] = {}
        self._owner: dict[int, _Graph] = {}  # id(caches) -> the graph they belong to, while in use
        self._lock = threading.Lock()

    def new_caches(self, batch_size: int, max_len: int) -> list[KVCache]:
        """The graph's caches for this shape (at least `max_len` long), or fresh ones while another
        generation holds them. Give them back with `release`."""
        key = (batch_size, -(-max_len // BUCKET) * BUCKET)
        with self._lock:
            graph = self._graphs.get(key)
            if graph is None:
                graph = self._graphs[key] = _Graph(self.model, self.forward, *key, capture=self.capture)
            if id(graph.caches) in self._owner:  # another generation holds them
                return self.model.new_caches(batch_size, max_len)
            self._owner[id(graph.caches)] = graph
            return graph.caches

    def release(self, caches: list[KVCache]) -> None:
        with self._lock:
            self._owner.pop(id(caches), None)

    def __call__(self, tokens: torch.Tensor, caches: list[KVCache], start: int,
                 positions: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        graph = self._owner.get(id(caches))
        if graph is None or tokens.shape[1] != 1:
            return self.model(tokens, caches, start, positions, mask)
        return graph.run(tokens, start, positions, mask)

    @property
    def graphs(self) -> int:
        """How many shapes have a graph (captured or, without capture, set up)."""
        return len(self._graphs)
