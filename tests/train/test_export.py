"""The trained model as a Hugging Face folder (transformers parity) and as GGUF (our loader's parity);
`luoxia generate` on the run folder and on the registered name."""

from __future__ import annotations

import json

import pytest
import torch

from luoxia.cli.main import main
from luoxia.text.formats.gguf import load_gguf, write_gguf
from luoxia.text.formats.hf import load_hf
from luoxia.text.loader import build_model
from luoxia.train.loop import train
from tiny_corpus import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("export") / "run"
    train(tiny_config(data_dir, out, max_steps=10, name="tiny-trained", export_gguf=True), log=lambda _: None)
    return out


def _ours(bundle, ids):
    with torch.no_grad():
        return build_model(bundle, torch.device("cpu"), torch.float32)(ids)


def test_hf_folder_loads_in_transformers_with_equal_logits(run_dir):
    transformers = pytest.importorskip("transformers")
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model_type"] == "llama"
    bundle = load_hf(run_dir)
    ids = torch.tensor([bundle.tokenizer.encode("The moon over the river. 床前明月光，疑是地上霜。")])
    hf = transformers.AutoModelForCausalLM.from_pretrained(run_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = hf(ids).logits
    torch.testing.assert_close(_ours(bundle, ids), theirs, rtol=1e-4, atol=1e-4)
    hf_tok = transformers.AutoTokenizer.from_pretrained(run_dir)
    assert hf_tok("moon 明月", add_special_tokens=False)["input_ids"] == bundle.tokenizer.encode("moon 明月")


def test_gguf_reads_back_with_equal_logits(run_dir, tmp_path):
    bundle = load_hf(run_dir)
    path = write_gguf(bundle.config, bundle.state_dict, bundle.tokenizer, tmp_path / "m.gguf")
    back = load_gguf(path)
    ours, theirs = bundle.config.to_dict(), back.config.to_dict()
    assert theirs.pop("norm_eps") == pytest.approx(ours.pop("norm_eps"))  # GGUF stores it as float32
    assert theirs == ours
    text = "The moon over the river. 床前明月光，疑是地上霜。"
    assert back.tokenizer.encode(text) == bundle.tokenizer.encode(text)
    ids = torch.tensor([bundle.tokenizer.encode(text)])
    torch.testing.assert_close(_ours(back, ids), _ours(bundle, ids), rtol=1e-5, atol=1e-5)
    assert load_gguf(run_dir / "model.gguf").config.vocab_size == bundle.config.vocab_size  # export_gguf = true


def test_generate_from_run_folder_and_registered_name(run_dir, capsys):
    assert main(["generate", "--model", str(run_dir), "--max-new-tokens", "5", "The moon"]) == 0
    assert main(["generate", "--model", "tiny-trained", "--max-new-tokens", "5", "--json", "The moon"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["finish_reason"] in ("length", "eos")
