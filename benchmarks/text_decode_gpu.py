"""Text decoding on a GPU: luoxia eager, CUDA-graphed and compiled, against transformers, one run.

The embedded SmolLM2-135M-Instruct (its Q4_1 GGUF dequantized to bfloat16, `--quant none`), the
32-token prompt of text_decode.py, 128 new tokens, greedy, batch 1; then 16 different prompts decoded
as one batch. Rows (--variants):

    eager            TextModel.load(device="cuda", dtype="bfloat16", quant="none"): kernels launched from Python
    graphs           the same model, its one-token step replayed as a CUDA graph (text.cuda_graph), no compile
    compile+graphs   TextModel.load(..., compile=True): the step compiled for fixed shapes, then graphed
    compile+bursts   the compile+graphs step, 8 greedy steps per graph replay (text.graph_bursts): argmax and
                     feed-back on the GPU, tokens to the host 8 at a time
    bursts           the same without compile
    fused+graphs     compile+graphs with Inductor's coordinate descent tuning (`compiled_decode_step(...,
                     fuse_matvecs=True)`, gpt-fast's setting): one-row matmuls become Triton reductions fused
                     with the ops beside them
    fused+bursts     the fused+graphs step in 8-step bursts
    compile          torch.compile with dynamic shapes and no graph (the CPU's --compile, for comparison)
    transformers     AutoModelForCausalLM on the same GGUF, bfloat16: eager `generate`, and `generate` with
                     cache_implementation="static", which compiles the forward itself on CUDA

Per row: warm-up s (the first generation: compile and capture included), decode tok/s (127 / time from
the first new token to the last, every token copied to the host as a streaming user gets it; median of
--repeats), batch-16 total tok/s, and how many of the 128 greedy tokens equal the eager row's
(bfloat16 kernels of another shape round differently, so a late divergence is expected).

    .venv/bin/python benchmarks/text_decode_gpu.py                  # on a CUDA machine, a few minutes
    .venv/bin/python benchmarks/text_decode_gpu.py --device cpu --variants eager,graphs --new-tokens 16

Graphed rows also report one step's GPU time alone and its kernels: how many, their time, and the
costliest by name (`top_kernels` in the JSON, the first few printed).

Prints the GPU, a Markdown table and whether batch-1 decode reaches 1000 tok/s (issue #10), and writes
benchmarks/results/text_decode_gpu.json. A row that fails prints its error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

from text_decode import BATCH, PROMPT_TEXT, PROMPT_TOKENS, same_prefix

RESULTS = Path(__file__).resolve().parent / "results" / "text_decode_gpu.json"
TARGET_DECODE_TOK_S = 1000.0
VARIANTS = ("eager", "graphs", "compile+graphs", "compile+bursts", "fused+graphs", "fused+bursts", "bursts", "compile",
            "transformers", "transformers static")
DEFAULT_VARIANTS = ("eager", "graphs", "compile+graphs", "compile+bursts", "fused+graphs", "fused+bursts",
                    "transformers", "transformers static")
TOP_KERNELS = 15  # kept per row in the JSON, by GPU time
BURST_STEPS = 8


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ours_run(model, step, prompts: list[list[int]], new_tokens: int) -> tuple[float, float, list[int]]:
    """(seconds to the first new token, seconds from it to the last, the first row's tokens)."""
    from luoxia.text.generate import GenerationConfig, decode_steps

    device = model.tok_embeddings.weight.device
    config = GenerationConfig(max_new_tokens=new_tokens, ignore_eos=True)
    synchronize(device)
    stamps, tokens = [], []
    t0 = time.perf_counter()
    for next_tokens in decode_steps(model, prompts, config, eos_ids=[], pad_id=0, one_token_forward=step):
        tokens.append(int(next_tokens[0]))  # to the host, as streaming does
        stamps.append(time.perf_counter())
    return stamps[0] - t0, stamps[-1] - stamps[0], tokens


def bursts_run(runner, prompts: list[list[int]], new_tokens: int) -> tuple[float, float, list[int]]:
    """As ours_run, through text.graph_bursts (tokens reach the host a burst at a time)."""
    synchronize(runner.model.tok_embeddings.weight.device)
    stamps, tokens = [], []
    t0 = time.perf_counter()
    for next_tokens in runner.generate(prompts, new_tokens):
        tokens.append(int(next_tokens[0]))
        stamps.append(time.perf_counter())
    return stamps[0] - t0, stamps[-1] - stamps[0], tokens


def hf_run(model, prompts: list[list[int]], new_tokens: int, static: bool) -> tuple[float, float, list[int]]:
    import torch
    from transformers.generation.streamers import BaseStreamer

    class Stamps(BaseStreamer):
        """Times each new token as generate hands it over (the first `put` is the prompt)."""

        def __init__(self):
            self.puts: list[float] = []

        def put(self, value):
            value.cpu()
            self.puts.append(time.perf_counter())

        def end(self):
            pass

    device = model.device
    input_ids = torch.tensor(prompts, device=device)
    extra = dict(cache_implementation="static") if static else {}
    stamps = Stamps() if len(prompts) == 1 else None  # streamers take one row
    synchronize(device)
    t0 = time.perf_counter()
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, do_sample=False, streamer=stamps,
                         pad_token_id=model.generation_config.pad_token_id, **extra)
    synchronize(device)
    end = time.perf_counter()
    if stamps is None:  # batch: no per-token stamps; the prefill is a small part of the whole
        return 0.0, end - t0, out[0, input_ids.shape[1]:].tolist()
    return stamps.puts[1] - t0, stamps.puts[-1] - stamps.puts[1], out[0, input_ids.shape[1]:].tolist()


def graph_step_us(step, replays: int = 200) -> dict:
    """GPU time of one batch-1 step alone (its graph replayed back to back, CUDA events), and the
    kernels one replay runs (torch.profiler): what the step costs without the Python loop around it."""
    import torch

    graphs = [g for g in {**getattr(step, "_graphs", {}), **getattr(step, "_bursts", {})}.values()
              if g.graph is not None and g.tokens.shape[0] == 1]
    if not graphs:
        return {}
    captured, out = graphs[0], {}
    steps = getattr(captured, "steps", 1)
    first = captured.tokens[:, 0].clone()

    def replay() -> None:
        if steps > 1:  # a burst moves its write position on: start each replay where the prompt ends
            captured.set(first, PROMPT_TOKENS)
        captured.graph.replay()

    try:
        replay()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(replays):
            replay()
        end.record()
        end.synchronize()
        out["replay_us"] = begin.elapsed_time(end) * 1000 / replays / steps
        replay()
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            captured.graph.replay()
            torch.cuda.synchronize()
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        out["kernels"] = len(kernels) / steps  # per step
        out["kernels_gpu_us"] = sum(e.device_time for e in kernels) / steps
        by_name: dict[str, list[float]] = {}  # name -> [launches, us]; Inductor reuses a kernel in every layer
        for e in kernels:
            launches_us = by_name.setdefault(e.name, [0, 0.0])
            launches_us[0] += 1
            launches_us[1] += e.device_time
        out["top_kernels"] = [{"name": name[:120], "per_step": n / steps, "us_per_step": us / steps}
                              for name, (n, us) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:TOP_KERNELS]]
    except Exception as e:  # noqa: BLE001 (a timing the profiler cannot take must not lose the row)
        out["profile_error"] = f"{type(e).__name__}: {e}"[:300]
    return out


def measure(run, prompts: list[list[int]], batch: list[list[int]], args) -> dict:
    t0 = time.perf_counter()
    run([prompts[0]], args.new_tokens)  # warm-up: compiles and captures what it needs
    warm_up_s = time.perf_counter() - t0
    runs = [run([prompts[0]], args.new_tokens) for _ in range(args.repeats)]
    decode = [(args.new_tokens - 1) / d for _, d, _ in runs]
    row = {"warm_up_s": warm_up_s, "decode_tok_s": statistics.median(decode), "decode_runs_tok_s": decode,
           "prefill_s": statistics.median(p for p, _, _ in runs), "tokens": runs[-1][2]}
    if not args.skip_batch:
        t0 = time.perf_counter()
        run(batch, args.batch_tokens)
        row["batch_warm_up_s"] = time.perf_counter() - t0
        totals = [len(batch) * (args.batch_tokens - 1) / run(batch, args.batch_tokens)[1] for _ in range(args.repeats)]
        row["batch_decode_tok_s"] = statistics.median(totals)
    return row


def bench(args: argparse.Namespace) -> dict:
    import torch

    from luoxia.core import registry
    from luoxia.core.compile import compile_or_eager
    from luoxia.text.compiled import compiled_decode_step, keep_argument_guards
    from luoxia.text.cuda_graph import GraphedDecodeStep
    from luoxia.text.graph_bursts import GraphBursts
    from luoxia.text.pipeline import TextModel

    os.environ["TQDM_DISABLE"] = "1"  # transformers' GGUF conversion bar
    device = torch.device(args.device)
    info = {"torch": torch.__version__, "device": str(device), "new_tokens": args.new_tokens,
            "prompt_tokens": PROMPT_TOKENS, "batch": BATCH, "batch_tokens": args.batch_tokens}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    print(json.dumps(info), flush=True)
    rows: dict[str, dict] = {}
    path = registry.resolve(args.model).resolve()
    ours_wanted = [v for v in args.variants if not v.startswith("transformers")]
    if ours_wanted:
        t0 = time.perf_counter()
        loaded = TextModel.load(str(path), device=args.device, dtype="bfloat16", quant="none")
        print(f"luoxia load {time.perf_counter() - t0:.1f} s", flush=True)
        model = loaded.model
        ids = loaded.tokenizer.encode(PROMPT_TEXT, add_special_tokens=False)[:PROMPT_TOKENS]
        made: dict = {}

        def compiled_forward(graphed: str):  # that row's compiled step if it ran: each compile once
            step = made.get(graphed) or compiled_decode_step(model, fuse_matvecs=graphed.startswith("fused"))
            return getattr(step, "forward", step)  # on CUDA a GraphedDecodeStep; on the CPU the compiled function

        steps = {"eager": lambda: None, "graphs": lambda: GraphedDecodeStep(model),
                 "compile+graphs": lambda: compiled_decode_step(model),  # what --compile does (graphed on CUDA)
                 "compile+bursts": lambda: GraphBursts(model, compiled_forward("compile+graphs"), steps=BURST_STEPS),
                 "fused+graphs": lambda: compiled_decode_step(model, fuse_matvecs=True),
                 "fused+bursts": lambda: GraphBursts(model, compiled_forward("fused+graphs"), steps=BURST_STEPS),
                 "bursts": lambda: GraphBursts(model, steps=BURST_STEPS),
                 "compile": lambda: compile_or_eager(model, print, "decoding", dynamic=True,
                                                     options={"guard_filter_fn": keep_argument_guards})}
        for name in ours_wanted:
            print(f"luoxia {name} ...", flush=True)
            step = made[name] = steps[name]()
            run = (lambda p, n, step=step: bursts_run(step, p, n)) if isinstance(step, GraphBursts) else \
                (lambda p, n, step=step: ours_run(model, step, p, n))
            try:
                rows[f"luoxia {name}"] = measure(run,
                                                 [ids], [ids[i:] + ids[:i] for i in range(BATCH)], args)
                rows[f"luoxia {name}"].update(graph_step_us(step))
            except Exception as e:  # noqa: BLE001 (report the row's failure, run the others)
                traceback.print_exc()
                rows[f"luoxia {name}"] = {"error": f"{type(e).__name__}: {e}"[:300]}
        del loaded, model
    hf_wanted = [v for v in args.variants if v.startswith("transformers")]
    if hf_wanted:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        t0 = time.perf_counter()
        where = dict(gguf_file=path.name) if path.is_file() else {}
        folder = path.parent if path.is_file() else path
        hf_ids = AutoTokenizer.from_pretrained(folder, **where)(PROMPT_TEXT, add_special_tokens=False)["input_ids"]
        hf_ids = hf_ids[:PROMPT_TOKENS]
        hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16, **where).to(device).eval()
        print(f"transformers load {time.perf_counter() - t0:.1f} s", flush=True)
        for name in hf_wanted:
            print(f"{name} ...", flush=True)
            static = name.endswith("static")
            try:
                rows[name] = measure(lambda p, n, static=static: hf_run(hf, p, n, static),
                                     [hf_ids], [hf_ids[i:] + hf_ids[:i] for i in range(BATCH)], args)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                rows[name] = {"error": f"{type(e).__name__}: {e}"[:300]}
    reference = rows.get("luoxia eager", {}).get("tokens")
    for row in rows.values():
        if reference and "tokens" in row:
            row["same_tokens_as_eager"] = same_prefix(row["tokens"], reference)
    return {"machine": info, "rows": rows, "target_decode_tok_s": TARGET_DECODE_TOK_S}


def report(result: dict) -> None:
    info, rows = result["machine"], result["rows"]
    print(f"\n## Text decoding on {info.get('gpu', info['device'])} (torch {info['torch']}), SmolLM2-135M bfloat16, "
          f"{info['prompt_tokens']}-token prompt, {info['new_tokens']} new tokens, greedy")
    print(f"\n| engine | warm-up s | decode tok/s, batch 1 | batch {info['batch']} tok/s | same tokens as eager |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        if "error" in r:
            print(f"| {name} | failed: {r['error']} | | | |")
            continue
        batch = f"{r['batch_decode_tok_s']:.1f}" if "batch_decode_tok_s" in r else "—"
        same = r.get("same_tokens_as_eager", "—")
        print(f"| {name} | {r['warm_up_s']:.1f} | {r['decode_tok_s']:.1f} | {batch} | {same} |")
    best = max((r["decode_tok_s"], n) for n, r in rows.items() if "decode_tok_s" in r and n.startswith("luoxia"))
    met = "met" if best[0] >= result["target_decode_tok_s"] else "not met"
    for name, r in rows.items():
        if "replay_us" in r:
            print(f"{name}: one batch-1 step on the GPU alone (graph replays) {r['replay_us']:.0f} us "
                  f"({1e6 / r['replay_us']:.0f} steps/s); {r.get('kernels', '?')} kernels, "
                  f"{r.get('kernels_gpu_us', float('nan')):.0f} us of kernel time {r.get('profile_error', '')}")
            for k in r.get("top_kernels", [])[:6]:
                print(f"    {k['us_per_step']:6.1f} us  {k['per_step']:5.1f}x  {k['name'][:90]}")
    print(f"\nfastest batch-1 row: {best[1]}, {best[0]:.1f} tok/s; target {result['target_decode_tok_s']:.0f}: {met}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu to try the script")
    p.add_argument("--model", default="smollm2", help="registry name or GGUF path (default: the embedded SmolLM2)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--batch-tokens", type=int, default=64, help=f"new tokens per row at batch {BATCH}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-batch", action="store_true", help=f"skip the batch-{BATCH} decode")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown:
        p.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    if args.new_tokens < 2 or args.batch_tokens < 2 or args.repeats < 1:
        p.error("--new-tokens and --batch-tokens must be >= 2, --repeats >= 1")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: CUDA is not available here; run on a GPU machine, or pass --device cpu to try the script")
    result = bench(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(args.output)
    report(result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
