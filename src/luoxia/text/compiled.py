"""The one-token decode step compiled with `torch.compile` (`TextModel.load(compile=True)`, `--compile`).

At batch 1 on a CPU the eager step spends about as long outside its matmuls as in them: each of the
30 layers of SmolLM2-135M runs some twenty small ops (norms, rotary embedding, SwiGLU, residual
adds, cache writes), each a Python call and a pass over memory. Inductor fuses them into a few
loops, and its C++ wrapper (`cpp_wrapper`) calls the kernels without Python in between. The
int4/int8 matmuls stay the same PyTorch kernels. On the project's 2-core CPU this takes int4 decode
from 81 to 138 tokens/s, llama.cpp's speed on the same file; w8a8 (int8 activations too) from 54 to
118, against llama.cpp's 116 in the same run (benchmarks/text_decode.py, docs/speed.md).

What it costs: the first call compiles, minutes on 2 cores the first time and about 8 s once
Inductor's on-disk cache holds the kernels (the batched and draft-check graphs of `warm_up` take
as long again each). So it is an option for long generations and servers,
not the default of a one-shot command. Prefill (many tokens at once) stays eager: it is one call
per prompt and its matmuls dominate.

On CUDA the step is compiled for fixed shapes instead and replayed as a CUDA graph (`text.cuda_graph`).

Guards: before each call Dynamo checks its assumptions, some 4,000 of them about the model's
modules (hooks, types, parameters), which cost almost a millisecond a token. A loaded model is
frozen (quantized once, never changed), so only the guards on the call's own arguments are kept:
the tokens, the caches (their shapes and strides), the positions and the mask. Shapes are dynamic
(`dynamic=True`), the caches' too (plain tensors, see `kv_cache`), so neither a longer generation,
nor another `max_new_tokens` (the cache holds prompt + max_new_tokens), nor another batch size
recompiles; batch 1 and batch > 1 compile once each. The weights' shapes stay static.

Floats: with `dynamic=True` Dynamo also made the modules' float attributes (the norms' eps, the rotary
base) symbolic inputs, found at the end of the compile that they must be constants, and traced the
whole model again: 14 of the 22 s of a warm-cache compile. They are constants of a loaded model, so
the step is traced with `specialize_float` (8 s).
"""

from __future__ import annotations

import types
from collections.abc import Callable

import torch

from luoxia.core.compile import compile_or_eager, note
from luoxia.text import decode_attention, int8_matmul
from luoxia.text.cuda_graph import GraphedDecodeStep
from luoxia.text.model import Transformer


def keep_argument_guards(entries: list) -> list[bool]:
    """Dynamo guard filter: drop the guards on the module itself (`self...`), keep all others."""
    return [not str(entry.name).startswith(("self.", "self[", "type(self")) for entry in entries]


def forward_of_its_own(model: Transformer) -> Callable:
    """`model.forward` with a code object of its own. Dynamo keeps its graphs per code object and, with
    the module guards dropped (`keep_argument_guards`), handed a second model of the class (another
    quantization, another size with as many layers) the first one's graph, which failed on the first
    call and left that model eager."""
    forward = type(model).forward
    own = types.FunctionType(forward.__code__.replace(), forward.__globals__, forward.__name__,
                             forward.__defaults__, forward.__closure__)
    own.__kwdefaults__ = forward.__kwdefaults__
    return types.MethodType(own, model)


def inductor_options(device_type: str, fuse_matvecs: bool = False) -> dict:
    """`torch.compile` options of the decode step on `device_type` (see `compiled_decode_step`)."""
    options: dict = {"guard_filter_fn": keep_argument_guards}
    if device_type == "cpu":
        options["cpp_wrapper"] = True
    elif fuse_matvecs:
        options["coordinate_descent_tuning"] = True
    return options


def compiled_decode_step(model: Transformer, log: Callable[[str], None] = note, fuse_matvecs: bool = False) -> Callable:
    """A function with the model's forward signature, compiled for one-token steps. Falls back to
    the eager model (with a note) where compiling fails, e.g. without a C++ compiler.

    On CUDA the step is compiled for fixed shapes and replayed as a CUDA graph (`text.cuda_graph`).
    `fuse_matvecs` (CUDA only) compiles it with Inductor's coordinate descent tuning, gpt-fast's setting:
    Inductor then writes a one-row matmul as a Triton reduction instead of a cuBLAS call, fuses it with
    the norm, SwiGLU or residual add beside it, and tunes each kernel's launch. Fewer kernels a step for
    a longer first compile; off until a GPU run shows it pays (`benchmarks/text_decode_gpu.py`'s fused rows)."""
    device_type = model.tok_embeddings.weight.device.type
    options = inductor_options(device_type, fuse_matvecs)
    if device_type == "cuda":
        return GraphedDecodeStep(model, compile_or_eager(forward_of_its_own(model), log, "decoding", dynamic=False,
                                                         options=options))
    if device_type == "cpu":
        decode_attention.KERNEL.load()  # attention and int8 products through their kernels where they build
        int8_matmul.load()
    constant_floats = torch._dynamo.config.patch(specialize_float=True)  # floats: see the module notes
    return constant_floats(compile_or_eager(forward_of_its_own(model), log, "decoding", dynamic=True, options=options))
