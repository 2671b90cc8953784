"""The one-token decode step compiled ahead of time (AOTInductor) against the eager model, one run, CPU.

What `--aot` (`src/luoxia/text/aot_step.py`) runs: `torch.export` traces the one-token step of the
embedded SmolLM2-135M-Instruct (quantized as `--quant`), AOTInductor compiles it into a `.pt2` package
(a shared library plus the packed weights), and a fresh process loads it without tracing or compiling.
Unlike `--compile` (`torch.compile`), no Dynamo guards run per token and nothing compiles at load.
The step's attention reads only the written columns of the cache (see the module). Rows: batch 1 (the
32-token prompt of text_decode.py, greedy, --new-tokens) and batch 16 (16 rotations of the prompt, 64
new tokens), each the median of --repeats, the package and the eager model in turn; then how far the
package's logits are from the same step run eagerly, and whether their greedy tokens agree.

    .venv/bin/python benchmarks/text_decode_aot.py                 # int4: about 2 minutes to build, then 1 to time
    .venv/bin/python benchmarks/text_decode_aot.py --quant w8a8 --package /tmp/w8a8.pt2   # keep the package
    .venv/bin/python benchmarks/text_decode_aot.py --perplexity    # and the held-out perplexity, token by token
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from luoxia.text.aot_step import AotDecodeStep, FlatStep, Package, batch_rows, build_package  # noqa: E402
from luoxia.text.model import Transformer  # noqa: E402
from luoxia.text.pipeline import TextModel  # noqa: E402
from text_decode import HELD_OUT, PROMPT_TEXT, PROMPT_TOKENS, same_prefix  # noqa: E402

BATCH = 16


def decode(model: Transformer, step, prompts: list[list[int]], new_tokens: int,
           cache: int = 0) -> tuple[float, list[int]]:
    """Greedy decoding of equally long prompts with `step` (None: the eager model) into caches of `cache`
    columns (default: prompt + new tokens, as `generate` makes them); (tok/s, row 0's tokens)."""
    rows, length = len(prompts), len(prompts[0]) + new_tokens
    caches = model.new_caches(rows, max(cache, length))
    forward = model if step is None else step
    with torch.inference_mode():
        token = model(torch.tensor(prompts), caches, 0)[:, -1].argmax(-1, keepdim=True)
        out = [int(token[0])]
        t0 = time.perf_counter()
        for start in range(len(prompts[0]), length - 1):
            token = forward(token, caches, start)[:, -1].argmax(-1, keepdim=True)
            out.append(int(token[0]))
        return rows * (new_tokens - 1) / (time.perf_counter() - t0), out


def logits_gap(model: Transformer, step: AotDecodeStep, ids: list[int]) -> float:
    """Largest |difference| of the package's logits from the same step run eagerly (`FlatStep`), over one
    step on the prompt's cache, relative to the logits' range."""
    caches = model.new_caches(1, len(ids) + 1)
    with torch.inference_mode():
        token = model(torch.tensor([ids]), caches, 0)[:, -1].argmax(-1, keepdim=True)
        saved = [(c.k.clone(), c.v.clone()) for c in caches]
        ours = step(token, caches, len(ids)).float()
        for cache, (k, v) in zip(caches, saved):
            cache.k.copy_(k)
            cache.v.copy_(v)
        eager_fixed = AotDecodeStep(model, FlatStep(model), FlatStep(model))  # the same inputs, run eagerly
        reference = eager_fixed(token, caches, len(ids)).float()
    return float((ours - reference).abs().max() / (reference.max() - reference.min()))


def stepwise_perplexity(model: Transformer, step, ids: list[int]) -> float:
    """Perplexity of `ids` fed one token at a time through `step` (None: the eager model), as decoding runs."""
    caches = model.new_caches(1, len(ids))
    forward = model if step is None else step
    nll = 0.0
    with torch.inference_mode():
        for i in range(len(ids) - 1):
            logits = forward(torch.tensor([[ids[i]]]), caches, i)[0, -1].float()
            nll -= float(torch.log_softmax(logits, -1)[ids[i + 1]])
    return math.exp(nll / (len(ids) - 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quant", default="int4", choices=["int4", "int8", "w8a8", "none"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--perplexity", action="store_true",
                        help="also the perplexity of the held-out texts, one token at a time (about 2 minutes)")
    parser.add_argument("--package", type=Path, help="build into (or reuse) this .pt2 instead of a temporary one")
    parser.add_argument("--long-cache", type=int, default=4096, metavar="N",
                        help="a batch-1 row with N-column caches, as a long --max-new-tokens makes (0: none)")
    args = parser.parse_args()
    loaded = TextModel.load("smollm2", quant=args.quant)
    model = loaded.model
    with tempfile.TemporaryDirectory() as tmp:
        path = args.package or Path(tmp) / "step.pt2"
        paths = {False: path, **({True: path.with_name(f"{path.stem}.batch.pt2")} if batch_rows(model) else {})}
        for batch, where in paths.items():  # int4: a second package for batches (see aot_step)
            if where.exists():
                print(f"reusing {where}")
            else:
                t0 = time.perf_counter()
                build_package(model, where, batch)
                print(f"built {where.name} in {time.perf_counter() - t0:.1f} s ({where.stat().st_size / 1e6:.0f} MB)")
        t0 = time.perf_counter()
        step = AotDecodeStep(model, *(Package(where, model) for where in paths.values()))
        print(f"loaded it in {time.perf_counter() - t0:.2f} s")
        ids = loaded.tokenizer.encode(PROMPT_TEXT, add_special_tokens=False)[:PROMPT_TOKENS]
        batch = [ids[i:] + ids[:i] for i in range(BATCH)]
        # The same step run eagerly (a tensor start, a mask) is the package's reference; the plain eager step
        # rounds differently (no mask, an integer start).
        gap = logits_gap(model, step, ids)
        aot_tokens = decode(model, step, [ids], args.new_tokens)[1]
        agree = {name: same_prefix(aot_tokens, decode(model, reference, [ids], args.new_tokens)[1])
                 for name, reference in (("the same step run eagerly",
                                          AotDecodeStep(model, FlatStep(model), FlatStep(model))),
                                         ("the eager model", None))}
        float32 = TextModel.load("smollm2", quant="none", dtype="float32").model
        quality = {}
        if args.perplexity:
            texts = [loaded.tokenizer.encode(path.read_text(), add_special_tokens=False)[:512] for path in HELD_OUT]
            reference = [stepwise_perplexity(float32, None, t) for t in texts]
            for name, forward in (("package", step), ("eager", None)):
                quality[name] = [stepwise_perplexity(model, forward, t) / r for t, r in zip(texts, reference)]
        agree["the float32 model"] = same_prefix(aot_tokens, decode(float32, None, [ids], args.new_tokens)[1])
        agree["(the eager model against the float32 model)"] = same_prefix(
            decode(model, None, [ids], args.new_tokens)[1], decode(float32, None, [ids], args.new_tokens)[1])
        rows = {}
        cases = [("batch 1", [ids], args.new_tokens, 0), (f"batch {BATCH}", batch, 64, 0)]
        if args.long_cache:
            cases.append((f"batch 1, {args.long_cache}-column cache", [ids], args.new_tokens, args.long_cache))
        for name, prompts, new, cache in cases:
            runs = {"aot": [], "eager": []}
            for _ in range(args.repeats):
                runs["aot"].append(decode(model, step, prompts, new, cache)[0])
                runs["eager"].append(decode(model, None, prompts, new, cache)[0])
            rows[name] = {k: statistics.median(v) for k, v in runs.items()}
    print(f"\nSmolLM2-135M-Instruct, --quant {args.quant}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; decode tok/s, median of {args.repeats}")
    print("| rows | AOT package | eager | ratio |\n|---|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['aot']:.1f} | {r['eager']:.1f} | {r['aot'] / r['eager']:.2f}x |")
    if quality:
        print("perplexity, one token at a time (first 512 tokens of each held-out text), ratio to float32's: "
              + "; ".join(f"{name} {' / '.join(f'{v:.4f}' for v in values)}" for name, values in quality.items()))
    print(f"logits, one step: largest difference from the same step run eagerly {gap:.2e} of their range")
    for name, n in agree.items():
        print(f"greedy tokens, batch 1: the package's first {n} of {args.new_tokens} equal {name}'s")


if __name__ == "__main__":
    main()
