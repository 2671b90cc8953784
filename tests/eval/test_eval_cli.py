"""`luoxia eval text` and `luoxia eval decoding` end to end, on tiny models and hand-made files."""

from __future__ import annotations

import json
import math

import pytest

from luoxia.cli.main import main
from luoxia.eval.decoding import StudyConfig, orderings, run_study
from luoxia.eval.text import evaluate_text, read_generations

GENERATIONS = [
    {"id": "poem", "prompt": "写一首五言绝句", "output": "床前明月光，疑是地上霜。\n举头望明月，低头思故乡。",
     "checks": ["poem:5"]},
    {"id": "loop", "prompt": "The firm has 120 employees. Describe it.",
     "output": "The firm has 150 employees. I don't know. I don't know. I don't know."},
    {"prompt": "Give JSON.", "output": '{"a": 1}'},
    {"provenance": {"prompt": "Say hi."}, "text": "Hi there, friend."},
]


@pytest.fixture
def generations(tmp_path):
    path = tmp_path / "generations.jsonl"
    path.write_text("\n".join(json.dumps(g, ensure_ascii=False) for g in GENERATIONS) + "\n", encoding="utf-8")
    return path


def test_evaluate_text_without_models(generations):
    result = evaluate_text(read_generations(generations), checks=["max-words:20"])
    s, per = result["summary"], result["records"]
    assert s["generations"] == 4 and 0 < s["distinct_1"] <= 1 and 0 <= s["self_bleu4"] <= 1
    assert s["repetition_pct"] == 25 and per[1]["repetition"] == "i don't know ×3"
    assert per[1]["contradictions"] == ["employee: prompt 120, output 150"] and s["number_contradictions"] == 1
    assert per[0]["checks"]["poem:5"]["passed"] and "poem:5" not in per[1].get("checks", {})
    assert s["check poem:5 pass_pct"] == 100 and s["check max-words:20 pass_pct"] == 100
    assert per[3]["prompt"] == "Say hi." and per[0]["words"] == 20


def test_eval_text_cli_writes_the_report(generations, tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "report"
    assert main(["eval", "text", "--input", str(generations), "--model", str(tiny_llama_dir), "--no-embeddings",
                 "--check", "json", "-o", str(out)]) == 0
    assert "self_bleu4" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["version"] == 1 and math.isfinite(data["summary"]["perplexity"])
    assert {"dist_perplexity.png", "dist_words.png", "report.md", "report.html"} <= {p.name for p in out.iterdir()}
    assert "| self_bleu4 |" in (out / "report.md").read_text()
    assert "<img src='dist_perplexity.png'" in (out / "report.html").read_text()


@pytest.mark.parametrize("content, message", [
    ("not json\n", "line 1 is not JSON"),
    ('{"prompt": "x"}\n', 'no "output"'),
    ("\n", "holds no generations"),
])
def test_eval_text_bad_input_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "g.jsonl"
    path.write_text(content)
    assert main(["eval", "text", "--input", str(path), "--no-model", "--no-embeddings", "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_eval_text_missing_file_and_bad_check(tmp_path, capsys):
    assert main(["eval", "text", "--input", str(tmp_path / "none.jsonl"), "-o", str(tmp_path)]) == 2
    assert "cannot read --input" in capsys.readouterr().err
    assert main(["eval", "text", "--input", "x", "--check", "rhyme", "-o", str(tmp_path)]) == 2
    assert "unknown check 'rhyme'" in capsys.readouterr().err


def test_decoding_study_runs_small(tiny_llama_dir):
    from luoxia.text.pipeline import TextModel

    model = TextModel.load(str(tiny_llama_dir), quant="none")
    texts = [f"story {i}: " + " ".join(f"word{(i * 7 + j) % 23}" for j in range(30)) for i in range(12)]
    config = StudyConfig(prompts=4, beam_prompts=2, prompt_tokens=5, new_tokens=6, beams=(2,), batch_size=3)
    result = run_study(model, None, config, texts, log=lambda s: None)
    assert list(result["rows"]) == ["human", "greedy", "beam b=2", "pure sampling", "t=0.9", "top-k=40",
                                    "top-k=640", "top-k=40 t=0.7", "nucleus p=0.95"]
    for name, row in result["rows"].items():
        assert row["prompts"] == (2 if name.startswith("beam") else 4)
        assert math.isfinite(row["perplexity"]) and 0 <= row["self_bleu4"] <= 1 + 1e-9
    assert result["rows"]["greedy"]["perplexity"] < result["rows"]["pure sampling"]["perplexity"]
    assert len(orderings(result["rows"])) >= 4


def test_decoding_bad_parameters(capsys):
    assert main(["eval", "decoding", "--prompts", "1", "-o", "/tmp/unused"]) == 2
    assert "at least 2 prompts" in capsys.readouterr().err
    assert main(["eval", "decoding", "--methods", "greedy,magic", "-o", "/tmp/unused"]) == 2
    assert "unknown method(s) ['magic']" in capsys.readouterr().err


def test_orderings_on_the_papers_rows():
    from luoxia.eval.decoding import PAPER

    rows = {k: dict(zip(("perplexity", "self_bleu4", "zipf", "repetition_pct"), v)) for k, v in PAPER.items()}
    found = dict(orderings(rows))
    assert found["greedy and beam have the lowest perplexity (below every sampling method and human)"]
    assert found["lowering the temperature of top-k=40 to 0.7 lowers perplexity and raises self-BLEU"]
