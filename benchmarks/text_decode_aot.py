"""The one-token decode step compiled ahead of time (AOTInductor) against the eager model, one run, CPU.

A probe for issue #10, not yet a luoxia feature: `torch.export` traces the step of the embedded
SmolLM2-135M-Instruct (quantized as `--quant`), `torch._inductor.aoti_compile_and_package` turns it
into a `.pt2` package (a shared library plus the packed weights), and `aoti_load_package` loads it
into a fresh process without tracing or compiling. Unlike `--compile` (`torch.compile`), no Dynamo
guards run per token and nothing compiles at load, so the question is what such a package, built
once per model, quantization, torch version and machine, gives at decode time and at load time.

The step has fixed-shape semantics like the CUDA graph's (`text.cuda_graph`): the write position is a
tensor, keys and values are written with `index_copy_`, and attention reads the whole preallocated
cache (prompt + new tokens) with a boolean mask over the written columns. Batch size and cache length
are dynamic. Rows: batch 1 (the 32-token prompt of text_decode.py, greedy, --new-tokens) and batch 16
(16 rotations of the prompt, 64 new tokens), each the median of --repeats, the package and the eager
model in turn; and whether their greedy tokens agree.

    .venv/bin/python benchmarks/text_decode_aot.py                 # int4: about 1 minute to build, then 1 to time
    .venv/bin/python benchmarks/text_decode_aot.py --quant w8a8 --package /tmp/w8a8.pt2   # keep the package
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from luoxia.text.kv_cache import KVCache  # noqa: E402
from luoxia.text.model import Transformer  # noqa: E402
from luoxia.text.pipeline import TextModel  # noqa: E402
from text_decode import PROMPT_TEXT, PROMPT_TOKENS  # noqa: E402

BATCH = 16


class FlatStep(nn.Module):
    """The model's one-token forward with the caches as flat tensors (k0, v0, k1, v1, ...), as export needs."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model

    def forward(self, tokens, positions, start, mask, *kv):
        caches = []
        for k, v in zip(kv[0::2], kv[1::2]):
            cache = KVCache.__new__(KVCache)
            cache.k, cache.v = k, v
            caches.append(cache)
        return self.model(tokens, caches, start, positions, mask)


def build_package(model: Transformer, path: Path) -> float:
    """Export the step with dynamic batch and cache length, compile it into `path`; seconds taken."""
    c = model.config
    batch, length = 2, 64
    dtype = model.tok_embeddings.weight.dtype
    kv = [torch.zeros(batch, c.n_kv_heads, length, c.head_dim, dtype=dtype) for _ in range(2 * c.n_layers)]
    example = (torch.zeros(batch, 1, dtype=torch.long), torch.zeros(batch, 1, dtype=torch.long), torch.tensor([3]),
               torch.ones(batch, 1, 1, length, dtype=torch.bool), *kv)
    b, s = torch.export.Dim("batch", min=1, max=256), torch.export.Dim("cache", min=2, max=c.max_seq_len)
    shapes = ({0: b}, {0: b}, None, {0: b, 3: s}, tuple({0: b, 2: s} for _ in kv))
    t0 = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(FlatStep(model), example, dynamic_shapes=shapes)
    torch._inductor.aoti_compile_and_package(program, package_path=str(path))
    return time.perf_counter() - t0


def decode(model: Transformer, step, prompts: list[list[int]], new_tokens: int) -> tuple[float, list[int]]:
    """Greedy decoding of equally long prompts with `step` (None: the eager model); (tok/s, row 0's tokens)."""
    rows, length = len(prompts), len(prompts[0]) + new_tokens
    caches = model.new_caches(rows, length)
    columns = torch.arange(length)
    with torch.inference_mode():
        token = model(torch.tensor(prompts), caches, 0)[:, -1].argmax(-1, keepdim=True)
        kv = [t for cache in caches for t in (cache.k, cache.v)]
        out = [int(token[0])]
        t0 = time.perf_counter()
        for start in range(len(prompts[0]), length - 1):
            if step is None:
                logits = model(token, caches, start)
            else:
                mask = (columns <= start).expand(rows, 1, 1, length)
                logits = step(token, torch.full((rows, 1), start), torch.tensor([start]), mask, *kv)
            token = logits[:, -1].argmax(-1, keepdim=True)
            out.append(int(token[0]))
        return rows * (new_tokens - 1) / (time.perf_counter() - t0), out


def logits_gap(model: Transformer, step, ids: list[int]) -> float:
    """Largest |difference| of the package's logits from the same step run eagerly, over one step on the
    prompt's cache, relative to the logits' range."""
    length = len(ids) + 1
    caches = model.new_caches(1, length)
    with torch.inference_mode():
        token = model(torch.tensor([ids]), caches, 0)[:, -1].argmax(-1, keepdim=True)
        kv = [t for cache in caches for t in (cache.k, cache.v)]
        start = len(ids)
        inputs = (token, torch.tensor([[start]]), torch.tensor([start]), torch.ones(1, 1, 1, length, dtype=torch.bool))
        ours = step(*inputs, *[t.clone() for t in kv]).float()
        reference = FlatStep(model)(*inputs, *kv).float()
    return float((ours - reference).abs().max() / (reference.max() - reference.min()))


def same_prefix(a: list[int], b: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quant", default="int4", choices=["int4", "int8", "w8a8", "none"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--package", type=Path, help="build into (or reuse) this .pt2 instead of a temporary one")
    args = parser.parse_args()
    loaded = TextModel.load("smollm2", quant=args.quant)
    model = loaded.model
    with tempfile.TemporaryDirectory() as tmp:
        path = args.package or Path(tmp) / "step.pt2"
        if path.exists():
            print(f"reusing {path}")
        else:
            print(f"built the package in {build_package(model, path):.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
        t0 = time.perf_counter()
        step = torch._inductor.aoti_load_package(str(path))
        print(f"loaded it in {time.perf_counter() - t0:.2f} s")
        ids = loaded.tokenizer.encode(PROMPT_TEXT, add_special_tokens=False)[:PROMPT_TOKENS]
        batch = [ids[i:] + ids[:i] for i in range(BATCH)]
        # The same fixed-shape step run eagerly is the package's reference; the plain eager step rounds
        # differently (its attention reads only the written columns, without a mask).
        gap = logits_gap(model, step, ids)
        aot_tokens = decode(model, step, [ids], args.new_tokens)[1]
        agree = {name: same_prefix(aot_tokens, decode(model, reference, [ids], args.new_tokens)[1])
                 for name, reference in (("the same step run eagerly", FlatStep(model)), ("the eager model", None))}
        rows = {}
        for name, prompts, new in (("batch 1", [ids], args.new_tokens), (f"batch {BATCH}", batch, 64)):
            runs = {"aot": [], "eager": []}
            for _ in range(args.repeats):
                runs["aot"].append(decode(model, step, prompts, new)[0])
                runs["eager"].append(decode(model, None, prompts, new)[0])
            rows[name] = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\nSmolLM2-135M-Instruct, --quant {args.quant}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; decode tok/s, median of {args.repeats}")
    print("| rows | AOT package | eager | ratio |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['aot']:.1f} | {r['eager']:.1f} | {r['aot'] / r['eager']:.2f}x |")
    print(f"logits, one step: largest difference from the same step run eagerly {gap:.2e} of their range")
    for name, n in agree.items():
        print(f"greedy tokens, batch 1: the package's first {n} of {args.new_tokens} equal {name}'s")


if __name__ == "__main__":
    main()
