"""The text watermark (Kirchenbauer et al. 2023) on the embedded model: detection rates and quality cost.

On N prompts, the embedded SmolLM2-135M-Instruct (float32, `quant="none"`) samples T new tokens
(multinomial, temperature 1, min_new_tokens = max_new_tokens = T) twice with the same seed: with the
watermark (γ, δ, a fixed key) and without. A third set is human text: Debian's `fortunes` package
(/usr/share/games/fortunes), consecutive fortunes joined and cut to T tokens. Each text is decoded to
a string and re-tokenized, as `luoxia detect` does, then scored:

    TPR      share of watermarked texts with z > 4
    FPR      share of unwatermarked generations, and of human texts, with z > 4
    PPL      perplexity of the generated tokens given their prompt under the same float32 model,
             pooled over the set (watermarked vs plain): the quality cost

    .venv/bin/python benchmarks/watermark.py                 # N=200, T=200: about 12 minutes on 2 cores
    .venv/bin/python benchmarks/watermark.py --n 16 --tokens 60   # a quick look

Prints the machine, a Markdown table and whether the targets are met (TPR >= 98%, FPRs <= 1%);
writes benchmarks/results/watermark.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from luoxia import load_text_model
from luoxia.safety.policy import SafetyConfig
from luoxia.safety.watermark import WatermarkConfig, detect_ids

TOPICS = ["the sea", "a lighthouse keeper", "autumn leaves", "a city at night", "learning to cook", "an old clock",
          "a mountain village", "the first day of school", "a lost cat", "rain on a tin roof", "a train journey",
          "a chess game", "the moon landing", "a small bakery", "a thunderstorm", "a library", "a garden in spring",
          "a violin", "a desert road", "friendship", "a winter morning", "the history of paper", "bicycles",
          "a robot that paints", "honey bees", "a letter from a grandmother", "volcanoes", "a busy market",
          "the night sky", "a fishing boat", "a museum", "the smell of coffee", "a kite", "a forest path",
          "an island", "a bridge", "a snowman", "a jazz club", "a river", "a birthday"]
FORMS = ["Write a short story about {}.", "Describe {} in vivid detail.", "Write a blog post about {}.",
         "Explain to a child what makes {} interesting.", "Write a diary entry about {}."]
FORTUNES = Path("/usr/share/games/fortunes")
NOT_ENGLISH = {"tang300", "song100", "chinese"}  # fortunes-zh, when installed next to it


def human_texts(tokenizer, n: int, tokens: int) -> tuple[list[list[int]], str]:
    """n chunks of `tokens` token ids from Debian's fortunes (English), consecutive fortunes joined."""
    names = sorted(FORTUNES.glob("*")) if FORTUNES.is_dir() else []
    files = [p for p in names if p.suffix == "" and p.is_file() and p.name not in NOT_ENGLISH]
    if not files:
        raise SystemExit("no /usr/share/games/fortunes: install Debian's `fortunes` package (make setup-test)")
    fortunes = []
    for f in files:
        fortunes += [s.strip() for s in f.read_text(encoding="utf-8", errors="replace").split("\n%\n") if s.strip()]
    chunks, current = [], []
    for text in fortunes:
        current += tokenizer.encode(text + "\n\n", add_special_tokens=False)
        if len(current) >= tokens:
            chunks.append(current[:tokens])
            current = []
        if len(chunks) == n:
            break
    return chunks, f"{len(fortunes)} fortunes from {len(files)} files in {FORTUNES}"


def perplexity(model, contexts: list[list[int]], targets: list[list[int]], batch: int = 8) -> float:
    """Pooled perplexity of `targets` given `contexts` (right-padded batches, no mask needed)."""
    total, count = 0.0, 0
    for i in range(0, len(targets), batch):
        rows = [(c + t, len(c), len(t)) for c, t in zip(contexts[i:i + batch], targets[i:i + batch])]
        longest = max(len(r[0]) for r in rows)
        ids = torch.zeros(len(rows), longest, dtype=torch.long)
        for b, (seq, _, _) in enumerate(rows):
            ids[b, :len(seq)] = torch.tensor(seq)
        with torch.inference_mode():
            logits = model.model(ids).float()
        for b, (_, first, n) in enumerate(rows):
            pred = logits[b, first - 1:first - 1 + n]  # position t predicts token t + 1
            total += float(F.cross_entropy(pred, ids[b, first:first + n], reduction="sum"))
            count += n
    return math.exp(total / count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="texts per set")
    ap.add_argument("--tokens", type=int, default=200, help="new tokens per text")
    ap.add_argument("--gamma", type=float, default=0.25)
    ap.add_argument("--delta", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=25, help="prompts per generate call")
    ap.add_argument("--threshold", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "watermark.json")
    args = ap.parse_args()

    t0 = time.perf_counter()
    model = load_text_model("smollm2", quant="none")
    model.safety = SafetyConfig(enabled=False)  # measure the watermark alone (no PII redaction of the outputs)
    tok, vocab = model.tokenizer, model.model.config.vocab_size
    config = WatermarkConfig(key="luoxia-benchmark-key", gamma=args.gamma, delta=args.delta)
    prompts = [FORMS[i % len(FORMS)].format(TOPICS[(i // len(FORMS)) % len(TOPICS)]) for i in range(args.n)]
    params = dict(chat=True, do_sample=True, max_new_tokens=args.tokens, min_new_tokens=args.tokens)
    sets: dict[str, list] = {"watermarked": [], "plain": []}
    for i in range(0, args.n, args.batch):
        chunk = prompts[i:i + args.batch]
        sets["watermarked"] += model.generate(chunk, seed=i, watermark=config, **params)
        sets["plain"] += model.generate(chunk, seed=i, **params)
        print(f"  generated {i + len(chunk)}/{args.n} x2 ({time.perf_counter() - t0:.0f} s)", flush=True)
    gen_s = time.perf_counter() - t0

    def retokenized(results) -> list[list[int]]:  # what `luoxia detect` sees: the text, tokenized again
        return [tok.encode(r.text, add_special_tokens=False) for r in results]

    human, human_source = human_texts(tok, args.n, args.tokens)
    rows = {}
    for name, ids in [("watermarked", retokenized(sets["watermarked"])), ("plain", retokenized(sets["plain"])),
                      ("human (fortunes)", human)]:
        z = [detect_ids(x, vocab, config).z_score for x in ids]
        rows[name] = {"texts": len(z), "mean_tokens": statistics.mean(len(x) for x in ids),
                      "flagged": sum(v > args.threshold for v in z), "mean_z": statistics.mean(z),
                      "median_z": statistics.median(z), "min_z": min(z), "max_z": max(z)}
    contexts = [tok.encode(model.chat_prompt(p), add_special_tokens=False) for p in prompts]
    for name in ("watermarked", "plain"):
        targets = [r.token_ids for r in sets[name]]
        rows[name]["perplexity"] = perplexity(model, contexts, targets)
    total_s = time.perf_counter() - t0

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}"
    print(f"\nmachine: {machine}; {args.n} prompts x {args.tokens} tokens, gamma={args.gamma}, delta={args.delta}, "
          f"z > {args.threshold}; human text: {human_source}")
    print(f"time: generation {gen_s:.0f} s, total {total_s:.0f} s\n")
    print("| set | texts | tokens (mean) | z > 4 | rate | mean z | median z | min z | max z | perplexity |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        ppl = f"{r['perplexity']:.2f}" if "perplexity" in r else "-"
        print(f"| {name} | {r['texts']} | {r['mean_tokens']:.0f} | {r['flagged']} | "
              f"{r['flagged'] / r['texts']:.1%} | "
              f"{r['mean_z']:.2f} | {r['median_z']:.2f} | {r['min_z']:.2f} | {r['max_z']:.2f} | {ppl} |")
    tpr = rows["watermarked"]["flagged"] / rows["watermarked"]["texts"]
    fpr_plain = rows["plain"]["flagged"] / rows["plain"]["texts"]
    fpr_human = rows["human (fortunes)"]["flagged"] / rows["human (fortunes)"]["texts"]
    cost = rows["watermarked"]["perplexity"] / rows["plain"]["perplexity"]
    print(f"\nTPR {tpr:.1%} (target >= 98%: {'met' if tpr >= 0.98 else 'NOT met'}); FPR plain {fpr_plain:.1%}, "
          f"human {fpr_human:.1%} (target <= 1%: {'met' if max(fpr_plain, fpr_human) <= 0.01 else 'NOT met'}); "
          f"perplexity x{cost:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                                    "rows": rows, "tpr": tpr, "fpr_plain": fpr_plain, "fpr_human": fpr_human,
                                    "perplexity_ratio": cost, "seconds": total_s, "human_source": human_source},
                                   indent=2))


if __name__ == "__main__":
    main()
