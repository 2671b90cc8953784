"""`luoxia eval text`: every text metric over a JSONL file of generations, and its report.

Input, one JSON object per line: `output` (or `text`) is required; `prompt` (or `provenance.prompt`,
so `luoxia generate --json` output works as it is), `id` and `checks` (a list of check specs for this
line only) are optional. References (human text, for MAUVE): a JSONL file with `text` (or `output`)
per line, or a plain text file with one reference per line.

Tokens are words, and single characters for Chinese (`textsplit.words`), so every metric works on
Chinese text at the character level.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from luoxia.core.errors import CorruptFileError, InvalidParameterError, UserFileError
from luoxia.eval import diversity
from luoxia.eval.checks import make_check
from luoxia.eval.coherence import number_contradictions
from luoxia.eval.report import Figure, Table, bars, histogram, report_dir, write_report
from luoxia.eval.textsplit import words

if TYPE_CHECKING:
    from luoxia.eval.embeddings import SentenceEncoder
    from luoxia.text.pipeline import TextModel


def read_lines(path: str | Path, what: str) -> list[str]:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserFileError(f"cannot read {what} {path}: {e.strerror}; check the path") from None
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CorruptFileError(f"{what} {path} is not UTF-8 (byte {e.start}); convert it to UTF-8") from None


def read_generations(path: str | Path) -> list[dict]:
    """Records {id, prompt, output, checks} from a JSONL file."""
    records = []
    for n, line in enumerate(read_lines(path, "--input"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise CorruptFileError(f"{path} line {n} is not JSON ({e.msg}); write one JSON object per line") from None
        if not isinstance(obj, dict):
            raise CorruptFileError(f"{path} line {n} is not a JSON object; write {{\"prompt\": ..., \"output\": ...}}")
        output = obj.get("output", obj.get("text"))
        if not isinstance(output, str):
            raise CorruptFileError(f'{path} line {n} has no "output" string; each line needs '
                                   '{"prompt": ..., "output": ...}')
        prompt = obj.get("prompt", (obj.get("provenance") or {}).get("prompt")) or ""
        records.append({"id": obj.get("id", n), "prompt": str(prompt), "output": output,
                        "checks": list(obj.get("checks") or [])})
    if not records:
        raise InvalidParameterError(f"{path} holds no generations; write one JSON object per line")
    return records


def read_references(path: str | Path) -> list[str]:
    """Reference texts: JSONL with "text"/"output", or one plain line each."""
    texts = []
    for line in read_lines(path, "--references"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and isinstance(obj.get("text", obj.get("output")), str):
            texts.append(obj.get("text", obj.get("output")))
        else:
            texts.append(line)
    return texts


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def evaluate_text(records: list[dict], *, references: Sequence[str] | None = None, model: TextModel | None = None,
                  encoder: SentenceEncoder | None = None, corpus: Sequence[str] | None = None,
                  checks: Sequence[str] = (), ngram: int = 4) -> dict:
    """All metrics: {"summary": {...}, "records": [...]}; model/encoder None skip the metrics that need them."""
    outputs = [r["output"] for r in records]
    prompts = [r["prompt"] for r in records]
    tokens = [words(o) for o in outputs]
    summary: dict = {"generations": len(records), "mean_words": _mean([len(t) for t in tokens])}
    for n in (1, 2, 3):
        summary[f"distinct_{n}"] = diversity.distinct_n(tokens, n)
    summary["self_bleu4"] = diversity.self_bleu(outputs) if len(outputs) > 1 else math.nan
    summary["zipf"] = diversity.zipf_coefficient(tokens) if len({t for ts in tokens for t in ts}) > 1 else math.nan
    repeats = [diversity.ending_repetition(t) for t in tokens]
    summary["repetition_pct"] = 100 * sum(r is not None for r in repeats) / len(records)
    if corpus is not None:
        summary[f"novelty_{ngram}"] = diversity.novelty(tokens, [words(c) for c in corpus], ngram)
    per = [{"id": r["id"], "prompt": r["prompt"], "output": r["output"], "words": len(t),
            "repetition": " ".join(rep.phrase) + f" ×{rep.times}" if rep else None}
           for r, t, rep in zip(records, tokens, repeats)]

    if model is not None:
        from luoxia.eval.fluency import perplexity, sentence_perplexities

        ppl = perplexity(model, outputs, prompts)
        summary["perplexity"] = ppl.overall
        for row, value, r in zip(per, ppl.per_text, records):
            row["perplexity"] = value
            sentences = sentence_perplexities(model, r["output"], r["prompt"])
            row["max_sentence_perplexity"] = max((v for _, v in sentences if math.isfinite(v)), default=math.nan)
        summary["mean_max_sentence_perplexity"] = _mean([row["max_sentence_perplexity"] for row in per])
    if encoder is not None:
        from luoxia.eval.coherence import adjacent_similarity
        from luoxia.eval.relevance import relevance

        with_prompt = [i for i, p in enumerate(prompts) if p.strip()]
        for i, value in zip(with_prompt, relevance(encoder, [prompts[i] for i in with_prompt],
                                                   [outputs[i] for i in with_prompt])):
            per[i]["relevance"] = value
        summary["relevance"] = _mean([row.get("relevance", math.nan) for row in per])
        for row, value in zip(per, adjacent_similarity(encoder, outputs)):
            row["coherence"] = value
        summary["coherence"] = _mean([row["coherence"] for row in per])
        if references:
            from luoxia.eval.mauve import compute_mauve

            m = compute_mauve(encoder.encode(outputs).numpy(), encoder.encode(list(references)).numpy())
            summary["mauve"], summary["mauve_buckets"] = m.mauve, m.num_buckets
    flagged = 0
    for row, r in zip(per, records):
        found = number_contradictions(r["prompt"], r["output"])
        row["contradictions"] = [f"{c.unit}: prompt {'/'.join(c.prompt)}, output {'/'.join(c.output)}" for c in found]
        flagged += bool(found)
    summary["number_contradictions"] = flagged
    all_specs = list(dict.fromkeys([*checks, *(s for r in records for s in r["checks"])]))
    built = {spec: make_check(spec) for spec in all_specs}
    for spec in all_specs:
        results = [(row, built[spec](r["output"])) for row, r in zip(per, records) if spec in checks or
                   spec in r["checks"]]
        for row, res in results:
            row.setdefault("checks", {})[spec] = {"passed": res.passed, "detail": res.detail}
        summary[f"check {spec} pass_pct"] = 100 * sum(res.passed for _, res in results) / len(results)
    return {"summary": summary, "records": per}


PER_RECORD = [("perplexity", "perplexity", True), ("relevance", "relevance (cosine)", False),
              ("coherence", "adjacent-sentence similarity", False), ("words", "length (words)", False)]


def write_text_report(result: dict, directory: str | Path, meta: dict) -> dict[str, Path]:
    """results.json, report.md, report.html and PNG plots (metric distributions, per-prompt scores)."""
    directory = report_dir(directory)
    summary, per = result["summary"], result["records"]
    figures = []
    for key, label, log in PER_RECORD:
        values = [row[key] for row in per if key in row]
        if values:
            histogram(directory / f"dist_{key}.png", values, f"{label} per generation", label, log=log)
            figures.append(Figure(f"dist_{key}.png", f"Distribution of {label} over the generations"))
    shown = per[:40]
    series = {label: [row.get(key, math.nan) for row in shown] for key, label, _ in PER_RECORD[1:3]
              if any(key in row for row in shown)}
    if series:
        bars(directory / "per_prompt.png", [str(row["id"]) for row in shown], series,
             "Per-prompt scores" + (" (first 40)" if len(per) > 40 else ""))
        figures.append(Figure("per_prompt.png", "Relevance and coherence of each generation, by id"))
    columns = ["id", "prompt", "output", "words", *[k for k, _, _ in PER_RECORD[:3] if any(k in r for r in per)],
               "repetition", "contradictions", "checks"]
    rows = []
    for row in per:
        cells = []
        for c in columns:
            v = row.get(c)
            if c in ("prompt", "output"):
                v = v if len(v) <= 80 else v[:77] + "..."
            elif c == "contradictions":
                v = "; ".join(v) or None
            elif c == "checks" and v:
                v = ", ".join(f"{k} {'ok' if x['passed'] else 'FAIL: ' + x['detail']}" for k, x in v.items())
            cells.append(v)
        rows.append(cells)
    tables = [Table("Summary", ["metric", "value"], [[k, v] for k, v in summary.items()],
                    "self-BLEU-4 is on a 0–1 scale (sacrebleu's score / 100), each generation against all the others; "
                    "repetition_pct: generations ending in a phrase of ≥ 2 words repeated ≥ 3 times."),
              Table("Per generation", columns, rows)]
    return write_report(directory, "luoxia eval text", {"meta": meta, **result}, tables, figures)
