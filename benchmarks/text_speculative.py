"""Speculative decoding by prompt lookup: ours beside transformers' and llama.cpp's, same prompts, same run.

    .venv/bin/python benchmarks/text_speculative.py [--repeats 3] [--new-tokens 128] [--lookup 8]
        [--variants int4,w8a8] [--llamacpp-python /path/to/python]

Each task is a chat prompt to the embedded SmolLM2-135M-Instruct, decoded greedily up to --new-tokens
(ending early at the end-of-turn token). Four tasks restate their input (copying, summarising a news
item, a report from a table of facts, editing code), two are free writing. Every engine runs each
task without and with prompt lookup (`--lookup` draft tokens):

- ours: `luoxia.text.speculative` on each --variants model (int4 is what `luoxia generate` loads);
- transformers 5.x: `generate(prompt_lookup_num_tokens=...)` on the same GGUF dequantized to float32;
- llama.cpp (when --llamacpp-python names a Python with llama-cpp-python): `LlamaPromptLookupDecoding`
  on the same Q4_1 file, 2 threads, in a child process.

Reported per task and engine: tokens/s (new tokens over the whole generate call, median of
--repeats), the lookup's speed-up over the same engine without it, our acceptance rate, and whether
the greedy text stayed the same. Writes benchmarks/results/text_speculative.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "text_speculative.json"
NEWS = ("The city council met on Tuesday to discuss the new bicycle lanes on Main Street. Mayor Chen said the "
        "lanes would open in March and cost 2.4 million yuan. Residents raised concerns about parking, and the "
        "council agreed to add 40 spaces on Elm Road.")
FACTS = ("event: Riverside Marathon\ndate: Sunday 12 October\nrunners: 8,200\nwinner: Li Wei, 2:11:45\n"
         "women's winner: Anna Berg, 2:27:03\nweather: cool and dry\nmoney raised: 1.2 million yuan for the "
         "children's hospital")
CODE = ("def mean(values):\n    total = 0\n    for value in values:\n        total += value\n"
        "    return total / len(values)\n")
TASKS = {
    "copy": (True, f"Copy this text exactly:\n{NEWS}"),
    "summarise": (True, f"Summarise this news in two sentences:\n{NEWS}"),
    "report from facts": (True, f"Write a short news report from these facts:\n{FACTS}"),
    "edit code": (True, f"Add type hints to this Python function and return the whole function:\n{CODE}"),
    "story": (False, "Write a short story about a lighthouse keeper."),
    "explain": (False, "Explain how rain forms, step by step."),
}
CHILD_MARK = "@@speculative "


def median_run(runs: list[tuple[float, list[int]]]) -> dict:
    """Median tokens/s of (seconds, tokens) runs, with the last run's tokens."""
    rates = [len(tokens) / seconds for seconds, tokens in runs]
    return {"tokens_per_s": round(statistics.median(rates), 2), "runs": [round(r, 2) for r in rates],
            "tokens": runs[-1][1]}


def ours(variant: str, prompts: dict[str, list[int]], args) -> dict:
    from luoxia.text.generate import GenerationConfig, decode_steps
    from luoxia.text.pipeline import TextModel
    from luoxia.text.speculative import SpeculationStats, speculative_steps

    quant, _, step = variant.partition("+")  # step: "", "compile" or "aot" (a built package; eager without)
    loaded = TextModel.load(args.model, device="cpu", quant=quant, compile=step == "compile", aot=step == "aot")
    loaded.warm_up()  # compiles the steps first, when compiled
    eos = loaded.tokenizer.eos_ids

    def run(ids: list[int], lookup: int) -> tuple[float, list[int], dict | None]:
        config = GenerationConfig(max_new_tokens=args.new_tokens, prompt_lookup_num_tokens=lookup)
        stats = SpeculationStats()
        t0 = time.perf_counter()
        if lookup:
            tokens = list(speculative_steps(loaded.model, ids, config, eos, stats=stats,
                                            one_token_forward=loaded.decode_step))
        else:
            tokens = [int(t[0]) for t in decode_steps(loaded.model, [ids], config, eos, 0,
                                                      one_token_forward=loaded.decode_step)]
        return time.perf_counter() - t0, tokens, stats.to_dict() if lookup else None

    out = {}
    for task, ids in prompts.items():
        out[task] = {}
        for lookup in (0, args.lookup):
            run(ids, lookup)  # warm-up
            runs = [run(ids, lookup) for _ in range(args.repeats)]
            out[task][lookup] = {**median_run([(s, t) for s, t, _ in runs]), "speculation": runs[-1][2]}
        print(f"  ours {variant} {task}: done", file=sys.stderr, flush=True)
    return out


def transformers_rows(prompts: dict[str, list[int]], args) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(args.model_path)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()

    def run(ids: list[int], lookup: int) -> tuple[float, list[int]]:
        input_ids = torch.tensor([ids])
        extra = {"prompt_lookup_num_tokens": lookup} if lookup else {}
        t0 = time.perf_counter()
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=args.new_tokens,
                             do_sample=False, pad_token_id=model.generation_config.pad_token_id, **extra)
        return time.perf_counter() - t0, out[0, len(ids):].tolist()

    out = {}
    for task, ids in prompts.items():
        out[task] = {}
        for lookup in (0, args.lookup):
            run(ids, lookup)
            out[task][lookup] = median_run([run(ids, lookup) for _ in range(args.repeats)])
        print(f"  transformers {task}: done", file=sys.stderr, flush=True)
    return out


def llamacpp_child(args) -> None:
    """In a Python with llama-cpp-python: every task without and with lookup; one JSON line."""
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    prompts = json.loads(Path(args.child).read_text())

    def run(llm: Llama, ids: list[int]) -> tuple[float, list[int]]:
        llm.reset()
        tokens = []
        t0 = time.perf_counter()
        for token in llm.generate(ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, reset=True):
            tokens.append(int(token))
            if token == llm.token_eos() or len(tokens) == args.new_tokens:
                break
        return time.perf_counter() - t0, tokens

    out = {}
    for lookup in (0, args.lookup):
        draft = LlamaPromptLookupDecoding(num_pred_tokens=lookup) if lookup else None
        llm = Llama(model_path=args.model_path, n_threads=2, n_threads_batch=2, n_ctx=1024, verbose=False,
                    draft_model=draft)
        for task, ids in prompts.items():
            run(llm, ids)
            out.setdefault(task, {})[lookup] = median_run([run(llm, ids) for _ in range(args.repeats)])
    print(CHILD_MARK + json.dumps(out))


def llamacpp_rows(prompts: dict[str, list[int]], args) -> dict | str:
    spec = RESULTS.parent / "text_speculative.prompts.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps(prompts))
    command = [args.llamacpp_python, __file__, "--child", str(spec), "--model-path", args.model_path,
               "--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens), "--lookup", str(args.lookup)]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    spec.unlink()
    for line in done.stdout.splitlines():
        if line.startswith(CHILD_MARK):
            rows = json.loads(line[len(CHILD_MARK):])
            return {task: {int(k): v for k, v in by_lookup.items()} for task, by_lookup in rows.items()}
    return f"failed: {done.stderr.strip()[-300:]}"


def summarise(rows: dict, lookup: int) -> dict:
    """Per task: speed without and with lookup, the ratio, and whether the text stayed the same."""
    out = {}
    for task, by_lookup in rows.items():
        plain, drafted = by_lookup[0], by_lookup[lookup]
        same = plain["tokens"] == drafted["tokens"]
        common = next((i for i, (a, b) in enumerate(zip(plain["tokens"], drafted["tokens"])) if a != b),
                      min(len(plain["tokens"]), len(drafted["tokens"])))
        out[task] = {"plain_tokens_per_s": plain["tokens_per_s"], "lookup_tokens_per_s": drafted["tokens_per_s"],
                     "speedup": round(drafted["tokens_per_s"] / plain["tokens_per_s"], 2),
                     "new_tokens": len(drafted["tokens"]), "same_text": same, "same_prefix_tokens": common,
                     "plain_runs": plain["runs"], "lookup_runs": drafted["runs"]}
        if drafted.get("speculation"):
            out[task]["acceptance_rate"] = drafted["speculation"]["acceptance_rate"]
            out[task]["forwards"] = drafted["speculation"]["forwards"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--variants", default="int4,w8a8",
                    help="our quantizations to run (TextModel.load quant=), '+compile' for a compiled step, "
                         "'+aot' for the package compiled ahead of time (built on first use); without, eager")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--lookup", type=int, default=8, help="draft tokens per step")
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--llamacpp-python", help="a Python with llama-cpp-python: adds llama.cpp's prompt lookup")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model-path", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        llamacpp_child(args)
        return

    import torch

    from luoxia.core.registry import resolve
    from luoxia.text.pipeline import TextModel

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    args.model_path = str(resolve(args.model))
    chat = TextModel.load(args.model, quant="int4")
    prompts = {task: chat.encode_prompt(chat.chat_prompt(text), templated=True) for task, (_, text) in TASKS.items()}
    engines: dict[str, dict] = {}
    for variant in args.variants.split(","):
        engines[f"luoxia {variant}"] = summarise(ours(variant, prompts, args), args.lookup)
    if not args.no_transformers:
        engines["transformers float32"] = summarise(transformers_rows(prompts, args), args.lookup)
    llama_note = "not run (--llamacpp-python PATH)"
    if args.llamacpp_python:
        rows = llamacpp_rows(prompts, args)
        if isinstance(rows, str):
            llama_note = rows
        else:
            engines["llama.cpp Q4_1"] = summarise(rows, args.lookup)
            llama_note = "ran"
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "torch_threads": torch.get_num_threads()},
              "settings": {"model": args.model, "new_tokens": args.new_tokens, "lookup": args.lookup,
                           "repeats": args.repeats, "grounded_tasks": [t for t, (g, _) in TASKS.items() if g]},
              "llamacpp": llama_note, "engines": engines}
    report(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")


def report(result: dict) -> None:
    lookup = result["settings"]["lookup"]
    print(f"\nPrompt lookup, {lookup} draft tokens; tokens/s = new tokens / generate call, median of "
          f"{result['settings']['repeats']}\n")
    print("| task | engine | tokens/s plain | tokens/s lookup | speed-up | kept drafts | same text |")
    print("|---|---|---:|---:|---:|---:|---|")
    for task in TASKS:
        for engine, rows in result["engines"].items():
            r = rows[task]
            kept = f"{r['acceptance_rate']:.0%}" if r.get("acceptance_rate") is not None else "—"
            same = "yes" if r["same_text"] else f"first {r['same_prefix_tokens']} of {r['new_tokens']}"
            print(f"| {task} | {engine} | {r['plain_tokens_per_s']} | {r['lookup_tokens_per_s']} | "
                  f"{r['speedup']:.2f}x | {kept} | {same} |")
    grounded = result["settings"]["grounded_tasks"]
    print()
    for engine, rows in result["engines"].items():
        g = statistics.median(rows[t]["speedup"] for t in grounded)
        free = statistics.median(rows[t]["speedup"] for t in rows if t not in grounded)
        print(f"{engine}: median speed-up {g:.2f}x on tasks that restate their input, {free:.2f}x on free writing")
    print(f"llama.cpp: {result['llamacpp']}")


if __name__ == "__main__":
    main()
