"""Speculative decoding with a draft model: the float32 embedded model drafted for by its own int4
quantization, beside the same float32 model without drafts and transformers, same prompts, same run.

    .venv/bin/python benchmarks/text_draft_model.py [--repeats 3] [--new-tokens 128]
        [--targets none,none+aot] [--drafts int4+aot] [--tokens 4,8] [--temperature 0.8] [--no-transformers]

float32 is the precision whose greedy text is transformers' token for token; a draft model makes it
faster without changing that text (`luoxia.text.draft_model`). The prompts are `text_speculative.py`'s
six chat tasks (four restate their input, two are free writing), decoded greedily up to --new-tokens
(ending early at the end-of-turn token). Engines, alternating run by run within each task:

- ours, float32, plain (`luoxia generate --quant none --no-aot`), and through the package compiled
  ahead of time (`none+aot`: `--quant none --aot`; Inductor's fused float32 can round a near tie the
  other way, so its text is not always transformers');
- each of them with each --drafts model (a quantization of the same GGUF; "+aot" drafts through its
  package) at each --tokens draft length (`luoxia generate --quant none --draft-model smollm2
  --draft-tokens N`);
- the draft model alone, plain (what the drafts cost);
- transformers 5.x `generate` on the same GGUF dequantized to float32 (the reference text).

Reported per task and engine: tokens/s (new tokens over the whole generation, prompt included;
median of --repeats), the speed-up over float32 plain, the acceptance rate, and whether the text is
float32's (ours plain, and transformers'). With --temperature every engine samples from seed 0 (the
texts then differ by engine, so only speeds and acceptance compare). Writes benchmarks/results/text_draft_model.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_speculative import TASKS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_draft_model.json"


def our_engines(args) -> tuple:
    """The float32 model, and name -> run(ids) -> (seconds, tokens, speculation dict or None)."""
    import torch

    from luoxia.text.draft_model import DraftModel
    from luoxia.text.generate import GenerationConfig, decode_steps
    from luoxia.text.pipeline import TextModel
    from luoxia.text.speculative import SpeculationStats, speculative_steps

    sampled = args.temperature > 0
    config = GenerationConfig(max_new_tokens=args.new_tokens, do_sample=sampled, temperature=args.temperature or 1.0)

    def seeded() -> torch.Generator | None:  # every run of every engine from the same seed
        return torch.Generator().manual_seed(0) if sampled else None

    def load(variant: str) -> TextModel:  # "int4", "int4+aot" (built here if missing), "none"
        quant, _, step = variant.partition("+")
        model = TextModel.load(args.model, device="cpu", quant=quant, aot=step == "aot")
        if step == "aot" and not model.load_info["aot"]:
            raise SystemExit(f"the {variant} package did not build; see the notes above")
        return model

    def plain(model: TextModel):
        def run(ids):
            t0 = time.perf_counter()
            tokens = [int(t[0]) for t in decode_steps(model.model, [ids], config, model.tokenizer.eos_ids, 0,
                                                      seeded(), one_token_forward=model.decode_step)]
            return time.perf_counter() - t0, tokens, None
        return run

    def drafted(target: TextModel, draft: DraftModel):
        def run(ids):
            stats = SpeculationStats()
            t0 = time.perf_counter()
            tokens = list(speculative_steps(target.model, ids, config, target.tokenizer.eos_ids, seeded(),
                                            target.decode_step, stats, draft_model=draft))
            return time.perf_counter() - t0, tokens, stats.to_dict()
        return run

    targets = {variant: load(variant) for variant in args.targets.split(",")}
    drafts = {variant: load(variant) for variant in args.drafts.split(",")}
    engines = {}
    for variant, target in targets.items():
        name = "float32" + variant.removeprefix("none")
        engines[name] = plain(target)
        for draft_variant, model in drafts.items():
            for k in (int(t) for t in args.tokens.split(",")):
                draft = DraftModel(model.model, draft_variant, model.decode_step, k)
                engines[f"{name} + {draft_variant} draft, k={k}"] = drafted(target, draft)
    for variant, model in drafts.items():
        engines[f"{variant} alone"] = plain(model)
    return next(iter(targets.values())), engines


def transformers_engine(args):
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(args.model_path)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()

    def run(ids):
        input_ids = torch.tensor([ids])
        t0 = time.perf_counter()
        sampling = dict(do_sample=args.temperature > 0, top_k=0, top_p=1.0, temperature=args.temperature or 1.0)
        torch.manual_seed(0)
        out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=args.new_tokens,
                             pad_token_id=model.generation_config.pad_token_id, **sampling)
        return time.perf_counter() - t0, out[0, len(ids):].tolist(), None
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--targets", default="none,none+aot", help="the float32 model, eager and/or through its "
                        "package (none+aot, built here if missing; not always transformers' text)")
    parser.add_argument("--drafts", default="int4+aot")
    parser.add_argument("--tokens", default="4,8")
    parser.add_argument("--temperature", type=float, default=0.0, help="sample at this temperature (0: greedy, "
                        "the default); sampled texts differ by engine, so only speeds and acceptance compare")
    parser.add_argument("--no-transformers", action="store_true")
    args = parser.parse_args()

    import torch

    from luoxia.core.registry import resolve

    args.model_path = str(resolve(args.model))
    target, engines = our_engines(args)
    baseline = next(iter(engines))  # the first target, plain
    if not args.no_transformers:
        engines["transformers float32"] = transformers_engine(args)
    prompts = {task: target.tokenizer.encode(target.chat_prompt(text), add_special_tokens=False)
               for task, (_, text) in TASKS.items()}

    rows: dict[str, dict] = {}
    for task, ids in prompts.items():
        for run in engines.values():  # warm-up
            run(ids)
        runs: dict[str, list] = {name: [] for name in engines}
        for _ in range(args.repeats):  # run r of every engine, then run r + 1
            for name, run in engines.items():
                runs[name].append(run(ids))
        reference = runs[baseline][-1][1]
        rows[task] = {}
        for name, results in runs.items():
            rate = statistics.median(len(tokens) / seconds for seconds, tokens, _ in results)
            rows[task][name] = {"tokens_per_s": round(rate, 2), "speculation": results[-1][2],
                                "same_as_float32": results[-1][1] == reference, "tokens": results[-1][1]}
        hf = rows[task].get("transformers float32")
        for row in rows[task].values():
            row["same_as_transformers"] = None if hf is None else row["tokens"] == hf["tokens"]
        print(f"  {task}: done", file=sys.stderr, flush=True)

    sampled = args.temperature > 0  # sampled texts differ by engine: no same-text marks
    how = f"sampled at temperature {args.temperature} (seed 0)" if sampled else "greedy"
    print(f"\n{args.new_tokens} new tokens at most, {how}, median of {args.repeats}; "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads\n")
    names = list(engines)
    print("| task | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for task, row in rows.items():
        base = row[baseline]["tokens_per_s"]
        cells = []
        for name in names:
            r = row[name]
            cell = f"{r['tokens_per_s']:.1f}"
            if name != baseline:
                cell += f" ({r['tokens_per_s'] / base:.2f}x"
                if r["speculation"]:
                    cell += f", {r['speculation']['acceptance_rate']:.0%} kept"
                cell += ")"
            if not sampled and not r["same_as_float32"]:
                cell += " ≠"
            cells.append(cell)
        print(f"| {task} | " + " | ".join(cells) + " |")
    print(f"\nmedian speed-up over {baseline} plain:")
    summary = {}
    hf = "transformers float32" if "transformers float32" in engines else None
    for name in names[1:]:
        ratio = statistics.median(row[name]["tokens_per_s"] / row[baseline]["tokens_per_s"] for row in rows.values())
        same = sum(row[name]["same_as_float32"] for row in rows.values())
        summary[name] = {"median_speedup": round(ratio, 3), "tasks_with_float32_text": None if sampled else same}
        line = f"  {name}: {ratio:.2f}x" + ("" if sampled else f"; {baseline}'s text on {same}/{len(rows)} tasks")
        if next(iter(rows.values()))[name]["speculation"]:
            kept = statistics.median(row[name]["speculation"]["acceptance_rate"] or 0 for row in rows.values())
            summary[name]["median_acceptance"] = kept
            line += f"; {kept:.0%} of drafts kept"
        if hf and name != hf:
            over = statistics.median(row[name]["tokens_per_s"] / row[hf]["tokens_per_s"] for row in rows.values())
            summary[name]["median_over_transformers"] = round(over, 3)
            line += f"; {over:.2f}x transformers"
        print(line)
    if hf and not sampled:
        same = sum(row[baseline]["same_as_transformers"] for row in rows.values())
        print(f"  ours {baseline} = transformers float32 on {same}/{len(rows)} tasks")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"args": vars(args), "rows": rows, "summary": summary}, indent=1))
    tmp.replace(RESULTS)
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
