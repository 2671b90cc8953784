"""`luoxia eval text` (metrics and a report for a JSONL of generations), `luoxia eval image` (FID, KID
and prompt adherence of an image model) and `luoxia eval decoding` (the Holtzman et al. 2020
decoding study with the embedded model and Debian's fortunes).

    luoxia eval text --input generations.jsonl --references human.jsonl -o report/
    luoxia eval decoding --prompts 40 --new-tokens 40 -o study/
    luoxia eval image --model shapes -n 200 -o image-report/

Each writes results.json, report.md, report.html and PNG plots into its -o folder and prints the
summary table. Defaults are those of `luoxia.eval.decoding.StudyConfig`, defined there only.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

from luoxia.core.registry import DEFAULT_TEXT_MODEL


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("eval", help="evaluate generated text; the decoding study",
                            description="Evaluate generated content (`eval text`) or reproduce the decoding "
                                        "study of Holtzman et al. 2020 (`eval decoding`).")
    sub = p.add_subparsers(dest="eval_command", metavar="WHAT", title="what to evaluate", required=True)

    t = sub.add_parser("text", help="metrics and a report for a JSONL file of generations",
                       description="Fluency (perplexity), diversity (distinct-n, self-BLEU-4, Zipf, repetition, "
                                   "novelty), relevance and coherence (MiniLM embeddings), number contradictions, "
                                   "format checks and MAUVE against references.")
    t.add_argument("--input", type=Path, required=True, metavar="FILE",
                   help='JSONL, one {"prompt": ..., "output": ...} per line (`luoxia generate --json` output works)')
    t.add_argument("--references", type=Path, metavar="FILE",
                   help="human texts for MAUVE: JSONL with \"text\", or one per line")
    t.add_argument("--corpus", type=Path, metavar="FILE", help="training corpus (plain text) for novelty")
    t.add_argument("--model", metavar="NAME|PATH",
                   help=f"reference model for perplexity (default: {DEFAULT_TEXT_MODEL}, float32)")
    t.add_argument("--no-model", action="store_true", help="skip perplexity (no language model is loaded)")
    t.add_argument("--no-embeddings", action="store_true",
                   help="skip relevance, coherence and MAUVE (the MiniLM encoder is not loaded)")
    t.add_argument("--check", action="append", default=[], metavar="SPEC",
                   help="format check on every output (repeatable): poem, poem:5, poem:7, json, max-words:N, "
                        "min-words:N, max-chars:N")
    t.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="report folder")
    t.set_defaults(run=lambda a: eval_text(input=a.input, references=a.references, corpus=a.corpus, model=a.model,
                                           no_model=a.no_model, no_embeddings=a.no_embeddings, checks=a.check,
                                           output=a.output))

    i = sub.add_parser("image", help="FID, KID, prompt adherence and sample time of an image model",
                       description="Sample an image model on the shapes world (one-object captions) or the digits "
                                   "(each class in turn) and report FID and KID against fresh real images (with the "
                                   "project's own feature network: not comparable with Inception FIDs), prompt "
                                   "adherence (shapes: a pixel detector checks colour, shape and position; digits: an "
                                   "independent SVM classifier) and images per second.")
    i.add_argument("--model", default="shapes", metavar="NAME|PATH", help="image model (default shapes)")
    i.add_argument("--data", choices=["shapes", "digits"], help="what to compare with (default: the model's data)")
    i.add_argument("-n", "--num-images", type=int, default=200, help="samples (default 200)")
    i.add_argument("--steps", type=int, default=50, help="sampling steps for diffusion models (default 50)")
    i.add_argument("--guidance", type=float, default=3.0, help="guidance scale (default 3)")
    i.add_argument("--seed", type=int, default=0, help="seed of prompts and samples (default 0)")
    i.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="report folder")
    i.set_defaults(run=lambda a: eval_image(model=a.model, data=a.data, n=a.num_images, steps=a.steps,
                                            guidance=a.guidance, seed=a.seed, output=a.output))
    from luoxia.cli.video import register_eval

    register_eval(sub)
    from luoxia.cli.music import register_eval as register_music_eval

    register_music_eval(sub)

    d = sub.add_parser("decoding", help="Holtzman et al. 2020 Table 1 with the embedded model and fortunes",
                       description="Generate continuations of fortunes with greedy, beam, pure sampling, "
                                   "temperature, top-k and nucleus decoding, and compare them with the human "
                                   "continuations: perplexity, self-BLEU-4, Zipf, repetition %, MAUVE.")
    d.add_argument("--model", metavar="NAME|PATH", help=f"model (default: {DEFAULT_TEXT_MODEL})")
    d.add_argument("--quant", choices=["auto", "none", "int8", "int4", "w8a8"], help="weight precision (default: auto)")
    d.add_argument("--prompts", type=int, help="prompts per method (default 40)")
    d.add_argument("--beam-prompts", type=int, help="prompts for each beam width (default 5; beams are slow)")
    d.add_argument("--prompt-tokens", type=int, help="prompt length in model tokens (default 16)")
    d.add_argument("--new-tokens", type=int, help="continuation length in tokens (default 40)")
    d.add_argument("--beams", type=lambda s: tuple(int(x) for x in s.split(",")), metavar="B,B",
                   help="beam widths (default 4,16)")
    d.add_argument("--batch-size", type=int, help="prompts per batched generation (default 20)")
    d.add_argument("--methods", type=lambda s: tuple(x.strip() for x in s.split(",")), metavar="M,M",
                   help='comma-separated subset, e.g. "human,greedy,nucleus p=0.95" (default: all)')
    d.add_argument("--seed", type=int, help="seed for the fortune choice and sampling (default 0)")
    d.add_argument("--no-mauve", action="store_true", help="skip MAUVE (the MiniLM encoder is not loaded)")
    d.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="report folder")
    d.set_defaults(run=lambda a: eval_decoding(
        model=a.model, quant=a.quant, output=a.output, mauve=not a.no_mauve,
        study={k: getattr(a, k) for k in ("prompts", "beam_prompts", "prompt_tokens", "new_tokens", "beams",
                                          "batch_size", "methods", "seed") if getattr(a, k) is not None}))


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def eval_text(*, input: Path, references: Path | None, corpus: Path | None, model: str | None, no_model: bool,
              no_embeddings: bool, checks: list[str], output: Path) -> int:
    from luoxia.eval.checks import make_check
    from luoxia.eval.report import fmt, report_dir
    from luoxia.eval.text import evaluate_text, read_generations, read_lines, read_references, write_text_report

    for spec in checks:
        make_check(spec)  # a bad spec fails before anything loads
    records = read_generations(input)
    refs = read_references(references) if references is not None else None
    corpus_lines = [ln for ln in read_lines(corpus, "--corpus") if ln.strip()] if corpus is not None else None
    report_dir(output)
    text_model = encoder = None
    if not no_model:
        from luoxia.text.pipeline import TextModel

        text_model = TextModel.load(model or DEFAULT_TEXT_MODEL, quant="none")
    if not no_embeddings:
        from luoxia.eval.embeddings import SentenceEncoder

        encoder = SentenceEncoder.load()
    t0 = time.perf_counter()
    result = evaluate_text(records, references=refs, model=text_model, encoder=encoder, corpus=corpus_lines,
                           checks=checks)
    meta = {"input": str(input), "references": str(references) if references else None,
            "model": text_model.name if text_model else None, "seconds": round(time.perf_counter() - t0, 2)}
    paths = write_text_report(result, output, meta)
    width = max(len(k) for k in result["summary"])
    for k, v in result["summary"].items():
        print(f"{k.ljust(width)}  {fmt(v)}")
    _note(f"report: {paths['markdown']}, {paths['html']}, {paths['json']}")
    return 0


def eval_image(*, model: str, data: str | None, n: int, steps: int, guidance: float, seed: int, output: Path) -> int:
    from luoxia.core.errors import InvalidParameterError
    from luoxia.eval.image import evaluate_model, image_report
    from luoxia.eval.report import report_dir
    from luoxia.image.diffusion import check_sampling_args
    from luoxia.image.pipeline import ImageModel

    check_sampling_args(guidance, 0.0, steps)
    if n < 2:
        raise InvalidParameterError(f"-n must be >= 2 for FID and KID, got {n}")
    report_dir(output)
    image_model = ImageModel.load(model)
    data = data or image_model.config.get("data")
    if data not in ("shapes", "digits"):
        raise InvalidParameterError(f"the model was trained on {data!r}; say --data shapes or --data digits")
    result = evaluate_model(image_model, data, n, steps=steps, guidance=guidance, seed=seed, log=_note)
    paths = image_report(result, output)
    for k in ("fid", "kid", "adherence", "images_per_s"):
        if k in result:
            v = result[k]["all"] if k == "adherence" else result[k]
            print(f"{k.ljust(12)}  {v:.4g}")
    _note(f"report: {paths['markdown']}, {paths['html']}, {paths['json']}")
    return 0


def eval_decoding(*, model: str | None, quant: str | None, output: Path, mauve: bool, study: dict) -> int:
    from luoxia.eval.decoding import StudyConfig, read_fortunes, run_study
    from luoxia.eval.report import report_dir

    config = StudyConfig(**study).validate()
    texts = read_fortunes()
    report_dir(output)
    from luoxia.text.pipeline import TextModel

    text_model = TextModel.load(model or DEFAULT_TEXT_MODEL, **({"quant": quant} if quant else {}))
    encoder = None
    if mauve:
        from luoxia.eval.embeddings import SentenceEncoder

        encoder = SentenceEncoder.load()
    _note(f"decoding study: {config.prompts} prompts ({config.beam_prompts} for beams), {config.prompt_tokens} "
          f"prompt tokens, {config.new_tokens} new tokens, model {text_model.name} "
          f"({text_model.load_info.get('quant')})")
    t0 = time.perf_counter()
    result = run_study(text_model, encoder, config, texts, log=_note)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["model"] = {"name": text_model.name, "sha256": text_model.sha256, "quant": text_model.load_info.get("quant")}
    paths = write_decoding_report(result, output)
    print(study_markdown(result))
    _note(f"report: {paths['markdown']}, {paths['html']}, {paths['json']} ({result['seconds']} s)")
    return 0


def study_rows(result: dict) -> tuple[list[str], list[list]]:
    from luoxia.eval.decoding import PAPER

    columns = ["method", "prompts", "ppl", "self-BLEU4", "Zipf", "repetition %", "MAUVE",
               "paper ppl", "paper self-BLEU4", "paper Zipf", "paper repetition %"]
    rows = []
    for name, r in result["rows"].items():
        paper = PAPER.get(name, (math.nan,) * 4)
        rows.append([name, r["prompts"], round(r["perplexity"], 2), round(r["self_bleu4"], 3), round(r["zipf"], 3),
                     round(r["repetition_pct"], 1), round(r["mauve"], 3) if "mauve" in r else None, *paper])
    return columns, rows


def study_markdown(result: dict) -> str:
    from luoxia.eval.report import fmt

    columns, rows = study_rows(result)
    lines = ["| " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) - 1)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_decoding_report(result: dict, directory: Path) -> dict[str, Path]:
    from luoxia.eval.decoding import orderings
    from luoxia.eval.report import Figure, Table, bars, write_report

    columns, rows = study_rows(result)
    names = list(result["rows"])
    figures = []
    for key, label, log in (("perplexity", "perplexity", True), ("self_bleu4", "self-BLEU-4", False),
                            ("zipf", "Zipf coefficient", False), ("repetition_pct", "repetition %", False),
                            ("mauve", "MAUVE", False)):
        if all(key in result["rows"][n] for n in names):
            bars(directory / f"{key}.png", names, {label: [result["rows"][n][key] for n in names]}, label, log=log)
            figures.append(Figure(f"{key}.png", f"{label} by decoding method"))
    checks = orderings(result["rows"])
    c = result["config"]
    tables = [Table("Decoding methods against human text", columns, rows,
                    f"{c['prompts']} fortunes ({c['beam_prompts']} for beam search), "
                    f"{c['prompt_tokens']}-token prompts, {c['new_tokens']}-token continuations, seed {c['seed']}. "
                    "Paper columns: Holtzman et al. 2020, "
                    "Table 1 (GPT-2 Large, WebText, 200 tokens)."),
              Table("The paper's orderings, checked on this run", ["finding", "holds"],
                    [[text, "yes" if ok else "no"] for text, ok in checks]),
              Table("Samples", ["method", "prompt", "continuation"],
                    [[n, s["prompt"], s["continuation"]] for n, ss in result["samples"].items() for s in ss[:1]])]
    result = {**result, "orderings": [{"finding": t, "holds": ok} for t, ok in checks]}
    data = {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k, v in result.items()}
    return write_report(directory, "luoxia eval decoding", data, tables, figures)
