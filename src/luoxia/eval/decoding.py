"""`luoxia eval decoding`: the shape of Table 1 of Holtzman et al. 2020, "The Curious Case of Neural Text
Degeneration" (arXiv 1904.09751), with the embedded SmolLM2 and human text from Debian's `fortunes`.

Setup (ours against theirs): they continue 5,000 WebText passages with GPT-2 Large for 200 tokens;
we take fortunes long enough to hold a prompt and a continuation, cut after `prompt_tokens` model tokens,
and continue each prompt for exactly `new_tokens` tokens (end-of-sequence forbidden before that, so
every method writes the same length, as theirs do). The human row is the fortunes' own continuation of
the same prompts, the same number of tokens long.

Metrics, on the continuations only:
- perplexity: under the generating model itself, given the prompt (pooled over tokens);
- self-BLEU-4: `diversity.self_bleu` (sacrebleu, each text against the others, 0–1);
- Zipf coefficient and repetition % on model tokens (`diversity.zipf_coefficient`,
  `diversity.ending_repetition`: a phrase of ≥ 2 tokens repeated ≥ 3 times at the end);
- MAUVE against a held-out set of human continuations (other fortunes, same length), on
  all-MiniLM-L6-v2 features (`mauve`). Not in their Table 1 (MAUVE came in 2021).
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from luoxia.core.errors import InvalidParameterError, UserFileError
from luoxia.eval import diversity

if TYPE_CHECKING:
    from luoxia.eval.embeddings import SentenceEncoder
    from luoxia.text.pipeline import TextModel

FORTUNES = Path("/usr/share/games/fortunes")
# English files of Debian's `fortunes` / `fortunes-min` (the rest are offensive, art or other languages).
FORTUNE_FILES = ("fortunes", "literature", "riddles", "wisdom", "people", "politics", "science", "songs-poems",
                 "work", "goedel", "humorists", "law", "love", "medicine", "men-women", "miscellaneous", "news",
                 "pets", "platitudes", "definitions", "education", "ethnic", "food", "kids", "linux", "magic",
                 "computers", "cookie", "drugs", "translate-me", "zippy", "startrek", "paradoxum", "linuxcookie")

# The paper's Table 1 (GPT-2 Large on WebText), for the report.
PAPER = {"human": (12.38, 0.31, 0.93, 0.28), "greedy": (1.50, 0.50, 1.00, 73.66),
         "beam b=16": (1.48, 0.44, 0.94, 28.94), "pure sampling": (22.73, 0.28, 0.93, 0.22),
         "t=0.9": (10.25, 0.35, 0.96, 0.66), "top-k=40": (6.88, 0.39, 0.96, 0.78),
         "top-k=640": (13.82, 0.32, 0.96, 0.28), "top-k=40 t=0.7": (3.48, 0.44, 1.00, 8.86),
         "nucleus p=0.95": (13.13, 0.32, 0.95, 0.36)}


def methods(beams: Sequence[int] = (4, 16)) -> dict[str, dict]:
    """The decoding methods of Table 1 as GenerationConfig parameters."""
    table = {"greedy": {}}
    table.update({f"beam b={b}": {"num_beams": b} for b in beams})
    table.update({
        "pure sampling": {"do_sample": True},
        "t=0.9": {"do_sample": True, "temperature": 0.9},
        "top-k=40": {"do_sample": True, "top_k": 40},
        "top-k=640": {"do_sample": True, "top_k": 640},
        "top-k=40 t=0.7": {"do_sample": True, "top_k": 40, "temperature": 0.7},
        "nucleus p=0.95": {"do_sample": True, "top_p": 0.95},
    })
    return table


@dataclasses.dataclass
class StudyConfig:
    prompts: int = 40  # sampling methods, greedy and the human row use this many prompts
    beam_prompts: int = 5  # beam search runs one prompt at a time: the first this many prompts
    prompt_tokens: int = 16
    new_tokens: int = 40
    beams: tuple[int, ...] = (4, 16)
    batch_size: int = 20  # prompts per batched generate call
    seed: int = 0
    methods: tuple[str, ...] | None = None  # None: all of `methods(beams)`

    def validate(self) -> StudyConfig:
        for name in ("prompts", "beam_prompts", "prompt_tokens", "new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if self.prompts < 2:
            raise InvalidParameterError("the study needs at least 2 prompts (self-BLEU compares texts); "
                                        "raise --prompts")
        if any(b < 2 for b in self.beams):
            raise InvalidParameterError(f"beam widths must be ≥ 2, got {list(self.beams)}")
        known = methods(self.beams)
        unknown = [m for m in self.methods or () if m not in known and m != "human"]
        if unknown:
            raise InvalidParameterError(f"unknown method(s) {unknown}; choose from {['human', *known]}")
        return self


def read_fortunes(directory: Path = FORTUNES, files: Sequence[str] = FORTUNE_FILES) -> list[str]:
    """Every fortune of the English files, as one line of text (attribution lines dropped)."""
    texts = []
    for name in files:
        path = directory / name
        if not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [ln for ln in entry.splitlines() if not re.match(r"\s*(--|—)\s*\S", ln)]
            text = " ".join(" ".join(lines).split())
            if text:
                texts.append(text)
    if not texts:
        raise UserFileError(f"no fortunes in {directory}; install Debian's fortunes: `apt-get install -y fortunes`")
    return texts


def split_human(model: TextModel, texts: Sequence[str], config: StudyConfig
                ) -> tuple[list[list[int]], list[list[int]], list[list[int]]]:
    """(prompt ids, human continuation ids) for `prompts` fortunes, and held-out continuations for MAUVE."""
    need = config.prompt_tokens + config.new_tokens
    long_enough = []
    for t in texts:
        ids = model.tokenizer.encode(t, add_special_tokens=False)
        if len(ids) >= need:
            long_enough.append(ids[:need])
    rng = random.Random(config.seed)
    rng.shuffle(long_enough)
    if len(long_enough) < 2 * config.prompts:
        raise InvalidParameterError(f"only {len(long_enough)} fortunes hold {need} tokens; the study needs "
                                    f"{2 * config.prompts} (prompts and held-out references): lower --prompts, "
                                    "--prompt-tokens or --new-tokens")
    chosen, held_out = long_enough[:config.prompts], long_enough[config.prompts:2 * config.prompts]
    p = config.prompt_tokens
    return [ids[:p] for ids in chosen], [ids[p:] for ids in chosen], [ids[p:] for ids in held_out]


def generate_continuations(model: TextModel, prompts: Sequence[str], params: dict, config: StudyConfig,
                           progress: Callable[[str], None]) -> list[list[int]]:
    """Token ids of exactly `new_tokens` continuation tokens per prompt (EOS forbidden until then)."""
    fixed = {"max_new_tokens": config.new_tokens, "min_new_tokens": config.new_tokens, **params}
    rows: list[list[int]] = []
    step = 1 if params.get("num_beams", 1) > 1 else config.batch_size
    for i in range(0, len(prompts), step):
        # Each method draws its own random numbers: with shared ones, methods that only trim the tail
        # (nucleus p=0.95 against pure sampling) would pick the same tokens most of the time.
        seed = config.seed + zlib.crc32(repr(sorted(params.items())).encode()) % 10**6 + i if fixed.get("do_sample") \
            else None
        out = model.generate(list(prompts[i:i + step]), seed=seed, **fixed)
        rows += [r.token_ids for r in out]
        progress(f"{min(i + step, len(prompts))}/{len(prompts)}")
    return rows


def score(model: TextModel, encoder: SentenceEncoder | None, prompt_ids, continuations, human_features
          ) -> dict[str, float]:
    from luoxia.eval.fluency import perplexity_of_ids

    texts = [model.tokenizer.decode(ids) for ids in continuations]
    row = {"perplexity": perplexity_of_ids(model, prompt_ids, continuations).overall,
           "self_bleu4": diversity.self_bleu(texts) if len(texts) > 1 else float("nan"),
           "zipf": diversity.zipf_coefficient(continuations),
           "repetition_pct": 100 * diversity.repetition_rate(continuations),
           "prompts": len(continuations)}
    if encoder is not None and human_features is not None and len(texts) > 1:
        from luoxia.eval.mauve import compute_mauve

        row["mauve"] = compute_mauve(encoder.encode(texts).numpy(), human_features).mauve
    return row


def run_study(model: TextModel, encoder: SentenceEncoder | None, config: StudyConfig,
              texts: Sequence[str] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Generate with each method and score it: {"rows": {method: metrics}, "samples": {...}, "timing_s": ...}."""
    config.validate()
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    prompt_ids, human, held_out = split_human(model, texts if texts is not None else read_fortunes(), config)
    prompts = [model.tokenizer.decode(ids) for ids in prompt_ids]
    human_features = None
    if encoder is not None:
        human_features = encoder.encode([model.tokenizer.decode(ids) for ids in held_out]).numpy()
    chosen = config.methods or ("human", *methods(config.beams))
    rows, samples, timing = {}, {}, {}
    for name in chosen:
        t0 = time.perf_counter()
        if name == "human":
            pids, conts = prompt_ids, human
        else:
            params = methods(config.beams)[name]
            n = config.beam_prompts if params.get("num_beams", 1) > 1 else config.prompts
            pids = prompt_ids[:n]
            conts = generate_continuations(model, prompts[:n], params, config,
                                           lambda s, name=name: log(f"  {name}: {s}"))
        rows[name] = score(model, encoder, pids, conts, human_features)
        samples[name] = [{"prompt": prompts[i], "continuation": model.tokenizer.decode(c)}
                         for i, c in enumerate(conts[:3])]
        timing[name] = round(time.perf_counter() - t0, 1)
        r = rows[name]
        log(f"{name}: ppl {r['perplexity']:.2f} · self-BLEU4 {r['self_bleu4']:.3f} · Zipf {r['zipf']:.3f} · "
            f"repetition {r['repetition_pct']:.1f}%" + (f" · MAUVE {r['mauve']:.3f}" if "mauve" in r else "")
            + f" ({timing[name]} s)")
    return {"config": dataclasses.asdict(config), "rows": rows, "samples": samples, "timing_s": timing,
            "paper": {k: dict(zip(("perplexity", "self_bleu4", "zipf", "repetition_pct"), v))
                      for k, v in PAPER.items()}}


def orderings(rows: dict[str, dict]) -> list[tuple[str, bool]]:
    """The paper's qualitative findings, each checked on our rows (only those whose methods were run)."""
    def has(*names):
        return all(n in rows for n in names)

    def get(name, key):
        return rows[name][key]

    beams = [n for n in rows if n.startswith("beam")]
    sampled = [n for n in rows if n not in ("human", "greedy", *beams)]
    checks = []
    if has("greedy", "human") and sampled:
        low = ["greedy", *beams]
        checks.append(("greedy and beam have the lowest perplexity (below every sampling method and human)",
                       max(get(n, "perplexity") for n in low) < min(get(n, "perplexity") for n in [*sampled, "human"])))
        checks.append(("greedy and beam repeat most (more repetition than every sampling method and human)",
                       min(get(n, "repetition_pct") for n in low)
                       > max(get(n, "repetition_pct") for n in [*sampled, "human"])))
    if has("pure sampling", "human"):
        checks.append(("pure sampling has a higher perplexity than human text",
                       get("pure sampling", "perplexity") > get("human", "perplexity")))
    if has("top-k=40", "top-k=40 t=0.7"):
        checks.append(("lowering the temperature of top-k=40 to 0.7 lowers perplexity and raises self-BLEU",
                       get("top-k=40 t=0.7", "perplexity") < get("top-k=40", "perplexity")
                       and get("top-k=40 t=0.7", "self_bleu4") > get("top-k=40", "self_bleu4")))
    if has("top-k=40", "top-k=640"):
        checks.append(("top-k=640 has a higher perplexity than top-k=40",
                       get("top-k=640", "perplexity") > get("top-k=40", "perplexity")))
    if has("human", "nucleus p=0.95") and len(sampled) > 1:
        def gap(n):
            return abs(get(n, "perplexity") - get("human", "perplexity")) / get("human", "perplexity")
        closest = min([*sampled, *[n for n in ("greedy", *beams) if n in rows]], key=gap)
        checks.append((f"nucleus p=0.95 is the closest to human perplexity (closest: {closest})",
                       closest == "nucleus p=0.95"))
    if has("human") and sampled and all("mauve" in rows[n] for n in sampled):
        best = max([n for n in rows if n != "human" and "mauve" in rows[n]], key=lambda n: get(n, "mauve"))
        checks.append((f"nucleus p=0.95 has the highest MAUVE of the methods (highest: {best})",
                       best == "nucleus p=0.95"))
    return checks
