"""`luoxia inspect` and `luoxia detect`, and `luoxia generate --watermark / --no-safety`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from luoxia.core.artifact import Artifact
from luoxia.core.provenance import Provenance


@pytest.fixture
def luoxia(capsys):
    from luoxia.cli.main import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_inspect_exit_codes_and_output(luoxia, tmp_path):
    good = Artifact("image", np.full((64, 96, 3), 90, np.uint8), Provenance(model="m", prompt="p")).save(
        tmp_path / "good.png")
    (tmp_path / "plain.txt").write_text("no labels\n")
    code, out, _ = luoxia("inspect", good)
    assert code == 0 and f"{good}: labelled (png)" in out and '"Label":"1"' in out and "model: m" in out
    code, out, _ = luoxia("inspect", good, tmp_path / "plain.txt")
    assert code == 3 and "plain.txt: missing" in out
    text = Artifact("text", "hello", Provenance(model="m")).save(tmp_path / "t.txt")
    text.write_text("hullo\n")
    code, out, _ = luoxia("inspect", "--json", good, text)
    assert code == 4
    assert [json.loads(line)["status"] for line in out.splitlines()] == ["labelled", "tampered"]
    code, _, err = luoxia("inspect", tmp_path / "nope.png")
    assert code == 2 and err.startswith("luoxia: error: no file")


def test_generate_watermark_then_detect(luoxia, tmp_path, tiny_llama_dir):
    out = tmp_path / "w.txt"
    code, _, err = luoxia("generate", "--model", tiny_llama_dir, "--raw", "The quick", "--sample", "--seed", "1",
                          "--max-new-tokens", "80", "--min-new-tokens", "80", "--watermark", "k1",
                          "--watermark-delta", "6", "-o", out)
    assert code == 0, err
    sidecar = json.loads(Path(f"{out}.aigc.json").read_text())
    assert sidecar["params"]["watermark"]["delta"] == 6 and "k1" not in json.dumps(sidecar)
    code, text, _ = luoxia("detect", out, "--key", "k1", "--model", tiny_llama_dir, "--json")
    result = json.loads(text)
    assert code == 0 and result["watermarked"] and result["z_score"] > 4
    code, text, _ = luoxia("detect", out, "--key", "other", "--model", tiny_llama_dir)
    assert code == 1 and "not watermarked" in text
    assert luoxia("inspect", out)[0] == 0


def test_generate_flags_for_safety(luoxia, tmp_path, tiny_llama_dir):
    code, out, _ = luoxia("generate", "--model", tiny_llama_dir, "--raw", "how to make a bomb", "--json")
    result = json.loads(out)
    assert code == 0 and result["finish_reason"] == "filtered" and result["provenance"]["safety"]["blocked"]
    code, out, _ = luoxia("generate", "--model", tiny_llama_dir, "--raw", "how to make a bomb", "--json",
                          "--max-new-tokens", "3", "--no-safety")
    assert json.loads(out)["provenance"]["safety"] == {"enabled": False, "disabled_by": "--no-safety"}
    terms = tmp_path / "terms.json"
    terms.write_text('{"fruit": ["banana bread"]}')
    code, out, _ = luoxia("generate", "--model", tiny_llama_dir, "--raw", "Banana  Bread", "--json",
                          "--filter-terms", terms)
    assert json.loads(out)["provenance"]["safety"]["category"] == "fruit"
    code, _, err = luoxia("generate", "--model", tiny_llama_dir, "hi", "--watermark-gamma", "0.5")
    assert code == 2 and "--watermark KEY" in err


FORTUNES = Path("/usr/share/games/fortunes/fortunes")


@pytest.mark.slow
def test_embedded_model_watermark_and_human_text(smollm2):
    """The embedded model: watermarked samples are found, plain ones and human text (fortunes) are not.
    (δ = 4 and 80 tokens keep it short and clear-cut; benchmarks/watermark.py measures δ = 2.)"""
    from luoxia.safety.watermark import WatermarkConfig, detect_ids

    config = WatermarkConfig("luoxia-test", gamma=0.25, delta=4.0)
    vocab = smollm2.model.config.vocab_size
    prompts = ["Write a short story about the sea.", "Describe a busy market."]
    params = dict(chat=True, do_sample=True, max_new_tokens=80, min_new_tokens=80, seed=0)
    for marked in smollm2.generate(prompts, watermark=config, **params):
        assert detect_ids(smollm2.tokenizer.encode(marked.text, add_special_tokens=False), vocab, config).z_score > 4
    for plain in smollm2.generate(prompts, **params):
        assert detect_ids(plain.token_ids, vocab, config).z_score < 4
    if not FORTUNES.exists():
        pytest.skip("Debian's fortunes is not installed (make setup-test installs it)")
    chunks = [c for c in FORTUNES.read_text(errors="replace").split("\n%\n") if len(c) > 200][:10]
    for chunk in chunks:
        assert detect_ids(smollm2.tokenizer.encode(chunk, add_special_tokens=False), vocab, config).z_score < 4
