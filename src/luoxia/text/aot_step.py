"""The one-token decode step compiled ahead of time (AOTInductor): `--aot`, `TextModel.load(aot=True)`.

`--compile` (`text.compiled`) compiles in every process (about 8 s with a warm cache) and checks
Dynamo's guards before every token. Here `torch.export` traces the step once and AOTInductor
compiles it into a package (a shared library and the packed weights) kept beside the model's cached
conversion; later processes load it in about 0.15 s and call it without Python in between. On the
project's 2-core CPU the embedded model's int4 step decodes at about twice the eager speed
(`benchmarks/text_decode_aot.py`); the first build takes about a minute.

The package has fixed-shape semantics, like the CUDA graph's (`text.cuda_graph`): the write position
is a tensor, keys and values are written with `index_copy_`, and attention reads the whole cache with a
boolean mask over the written columns (so very long caches, over `MAX_CACHE`, stay eager). Batch size
and cache length are dynamic. What the package cannot serve runs the eager model: several tokens at
once (prompts, speculative checks), caches that are views (not contiguous), a tensor start.

A package is specific to the model file, the quantization layout, the torch version and the CPU's
vector instructions, all in its name; one that fails to build or load is reported in one line and
the model decodes eagerly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from luoxia.text.kv_cache import KVCache
from luoxia.text.model import Transformer

MAX_CACHE = 2048  # longer caches decode eagerly: the packaged step reads every column of the cache
MAX_ROWS = 1024  # the largest batch a package takes (larger ones decode eagerly)


class FlatStep(nn.Module):
    """The model's one-token forward with the caches as flat tensors (k0, v0, k1, v1, ...), as export needs."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, tokens, positions, start, mask, *kv):
        caches = [KVCache.of(k, v) for k, v in zip(kv[0::2], kv[1::2])]
        return self.model(tokens, caches, start, positions, mask)


def cpu_tag() -> str:
    """The CPU's vector instructions as a package built here may use them ("avx512-vnni"): a package
    is compiled for the machine it was built on. (Inductor's own check compiles a test program: 1 s.)"""
    tag = torch.backends.cpu.get_cpu_capability().lower()
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return tag
    return tag + "".join(f"-{name}" for name in ("vnni", "amx") if f" {name}" in flags or f"_{name}" in flags)


def package_path(directory: Path, mode: str) -> Path:
    """Where the package of a model quantized as `mode` lives, in its cache `directory`."""
    from luoxia.text.quant import LAYOUT_VERSION

    return directory / f"decode.{mode}.v{LAYOUT_VERSION}.torch-{torch.__version__}.{cpu_tag()}.pt2"


def cache_limit(model: Transformer) -> int:
    """The longest cache the package is exported for: the model's context (at least 4, export's minimum)."""
    return max(model.config.max_seq_len, 4)


def build_package(model: Transformer, path: Path) -> None:
    """Export the step with dynamic batch and cache length and compile it into `path` (whole or not at all)."""
    c = model.config
    batch, length = 2, 64
    dtype = model.tok_embeddings.weight.dtype
    kv = [torch.zeros(batch, c.n_kv_heads, length, c.head_dim, dtype=dtype) for _ in range(2 * c.n_layers)]
    example = (torch.zeros(batch, 1, dtype=torch.long), torch.zeros(batch, 1, dtype=torch.long), torch.tensor([3]),
               torch.ones(batch, 1, 1, length, dtype=torch.bool), *kv)
    rows = torch.export.Dim("batch", min=1, max=MAX_ROWS)
    columns = torch.export.Dim("cache", min=2, max=cache_limit(model))
    shapes = ({0: rows}, {0: rows}, None, {0: rows, 3: columns}, tuple({0: rows, 2: columns} for _ in kv))
    with torch.no_grad():
        program = torch.export.export(FlatStep(model), example, dynamic_shapes=shapes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.pt2")  # the packager wants the .pt2 suffix
    try:
        torch._inductor.aoti_compile_and_package(program, package_path=str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Package:
    """A loaded package, called with its flat tensors. PyTorch's loader is used directly: the wrapper
    `torch._inductor.aoti_load_package` imports Inductor (1 s) and parses the call spec on every call."""

    def __init__(self, path: Path):
        self.loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1)

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.loader.boxed_run(list(tensors))[0]


class AotDecodeStep:
    """A one-token forward (`decode_steps`' `one_token_forward`) through a loaded package; what the
    package cannot serve (see the module notes) runs `model`."""

    def __init__(self, model: Transformer, package: Callable[..., torch.Tensor]):
        self.model, self.package = model, package
        self.max_cache = min(MAX_CACHE, cache_limit(model))

    def __call__(self, tokens: torch.Tensor, caches: list[KVCache], start: int,
                 positions: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
        length = caches[0].max_len
        if (tokens.shape[1] != 1 or not isinstance(start, int) or not 2 <= length <= self.max_cache
                or tokens.shape[0] > MAX_ROWS or not all(c.k.is_contiguous() and c.v.is_contiguous() for c in caches)):
            return self.model(tokens, caches, start, positions, mask)
        rows = tokens.shape[0]
        if positions is None:
            positions = torch.full((rows, 1), start, dtype=torch.long)
        columns = torch.arange(length)
        if mask is None:  # causal, no padding: every written column
            full = (columns <= start).expand(rows, 1, 1, length).contiguous()
        else:  # (B, 1, 1, start + 1), the padding mask of decode_steps
            full = torch.zeros(rows, 1, 1, length, dtype=torch.bool)
            full[..., :start + 1] = mask
        kv = [t for cache in caches for t in (cache.k, cache.v)]
        # The package reads its inputs with the strides of contiguous tensors.
        return self.package(tokens.contiguous(), positions.contiguous(), torch.tensor([start]), full, *kv)


def aot_decode_step(model: Transformer, directory: Path, mode: str,
                    log: Callable[[str], None] = print) -> AotDecodeStep | None:
    """The packaged step of `model` (quantized as `mode`), built into `directory` on first use; None,
    with a note, where building or loading fails (the caller then decodes eagerly)."""
    try:
        path = package_path(directory, mode)
        if not path.exists():
            log("building the ahead-of-time decode step (once for this model and quantization: about a minute) ...")
            build_package(model, path)
        return AotDecodeStep(model, Package(path))
    except Exception as e:  # noqa: BLE001 (no compiler, an unsupported op, a damaged package)
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        log(f"note: the ahead-of-time decode step is unavailable ({type(e).__name__}: {reason}); decoding eagerly")
        return None
