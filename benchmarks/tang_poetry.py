"""The Tang-poetry demo (`make poetry`): pretrain a small GPT on Debian's Chinese fortunes, fine-tune it
on 唐诗三百首, register it as `tang-poet`, and measure it on a held-out tenth of the poems.

    1. split tang300 into poems for training and every 10th poem held out
    2. luoxia data prepare chinese song100 poems_train --tokenizer char  →  pretraining data
    3. luoxia train text (pretrain, from scratch)
    4. luoxia data prepare poems_train --val poems_heldout --tokenizer <pretrain>  →  fine-tuning data
    5. luoxia train text (fine-tune from the pretrained run), registered as tang-poet
    6. generate one poem per held-out title; count poems whose lines are all 5 or all 7 characters
       with consistent punctuation (，then 。/？/！ in every couplet)

Prints a table and writes benchmarks/results/tang_poetry.json. Needs `apt-get install fortunes-zh`.
Set POETRY_SCALE=0.2 for a quick smoke run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import time
from pathlib import Path

FORTUNES = Path("/usr/share/games/fortunes")
WORK = Path(os.environ.get("POETRY_DIR", "runs/poetry")).resolve()  # the TOML files hold absolute paths
SCALE = float(os.environ.get("POETRY_SCALE", "1"))
PHRASE_RE = re.compile(r"([\u4e00-\u9fff]+)([，。？！；])")


def regular(body: str) -> bool:
    """All phrases 5 or all 7 characters, couplets as 'X，X。' (or ？！), nothing else in the body.

    >>> regular("床前明月光，疑是地上霜。\\n举头望明月，低头思故乡。")
    True
    """
    text = "".join(body.split())
    phrases = PHRASE_RE.findall(text)
    if len(phrases) < 4 or len(phrases) % 2 or "".join(a + b for a, b in phrases) != text:
        return False
    n = len(phrases[0][0])
    return n in (5, 7) and all(len(p) == n for p, _ in phrases) and all(
        (mark == "，") if i % 2 == 0 else mark in "。？！" for i, (_, mark) in enumerate(phrases))


def poem_body(text: str) -> str:
    """The poem without its title and author lines."""
    lines = [line for line in text.split("\n") if line.strip()]
    return "\n".join(line for line in lines if not line.startswith(("《", "作者")))


def write_toml(path: Path, values: dict, model: dict | None = None) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    if model:
        lines += ["[model]"] + [f"{k} = {json.dumps(v)}" for k, v in model.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    import torch

    from luoxia.data.clean import clean_text
    from luoxia.data.prepare import DataConfig, prepare
    from luoxia.data.sources import read_documents
    from luoxia.text.pipeline import TextModel
    from luoxia.train.config import load_train_config
    from luoxia.train.loop import train

    if not (FORTUNES / "tang300").is_file():
        print("needs Debian's fortunes-zh: apt-get install fortunes-zh", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    poems = [clean_text(d.text) for d in read_documents(FORTUNES / "tang300")]
    poems = [p for p in poems if p]
    held = [p for i, p in enumerate(poems) if i % 10 == 9]
    kept = [p for i, p in enumerate(poems) if i % 10 != 9]
    (WORK / "poems_train.fortune").write_text("\n%\n".join(kept) + "\n", encoding="utf-8")
    (WORK / "poems_heldout.fortune").write_text("\n%\n".join(held) + "\n", encoding="utf-8")

    t0 = time.perf_counter()
    prepare(DataConfig(inputs=[str(FORTUNES / "chinese"), str(FORTUNES / "song100"), str(WORK / "poems_train.fortune")],
                       out=str(WORK / "pretrain-data"), tokenizer="char", vocab_size=0, val_fraction=0.05))
    prepare(DataConfig(inputs=[str(WORK / "poems_train.fortune")], val_inputs=[str(WORK / "poems_heldout.fortune")],
                       out=str(WORK / "poems-data"), tokenizer=str(WORK / "pretrain-data" / "tokenizer.json")))
    t_data = time.perf_counter() - t0

    model = {"dim": 192, "n_layers": 4, "n_heads": 6, "n_kv_heads": 2}
    pre_steps, ft_steps = max(10, int(400 * SCALE)), max(10, int(200 * SCALE))
    pre = write_toml(WORK / "pretrain.toml", {
        "data": str(WORK / "pretrain-data"), "out": str(WORK / "pretrain"), "seq_len": 128, "batch_size": 16,
        "max_steps": pre_steps, "lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 30, "eval_every": 200,
        "eval_batches": 10, "checkpoint_every": 200, "log_every": 50}, model)
    ft = write_toml(WORK / "finetune.toml", {
        "data": str(WORK / "poems-data"), "out": str(WORK / "tang-poet"), "name": "tang-poet",
        "init": str(WORK / "pretrain"), "seq_len": 128, "batch_size": 16, "max_steps": ft_steps, "lr": 1e-3,
        "min_lr": 1e-4, "warmup_steps": 20, "eval_every": 100, "eval_batches": 10, "checkpoint_every": 200,
        "log_every": 50, "export_gguf": True})
    t0 = time.perf_counter()
    pre_summary = train(load_train_config(str(pre)))
    t_pre = time.perf_counter() - t0
    t0 = time.perf_counter()
    ft_summary = train(load_train_config(str(ft)))
    t_ft = time.perf_counter() - t0

    t0 = time.perf_counter()
    poet = TextModel.load("tang-poet")
    samples, ok = [], 0
    for i, poem in enumerate(held):
        title = poem.split("\n", 1)[0]
        text = poet.generate(title + "\n", max_new_tokens=120, do_sample=True, temperature=0.7, top_k=20,
                             seed=i).text
        good = regular(poem_body(text))
        ok += good
        samples.append({"title": title, "generated": text, "regular": good})
    reference = sum(regular(poem_body(p)) for p in held) / len(held)
    t_gen = time.perf_counter() - t0
    result = {
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads",
        "scale": SCALE, "pretrain_steps": pre_steps, "finetune_steps": ft_steps,
        "parameters": pre_summary["parameters"], "pretrain_val_loss": pre_summary["val_loss"],
        "poems_val_loss": ft_summary["val_loss"], "heldout_poems": len(held),
        "regular_share": ok / len(held), "regular_share_of_real_heldout_poems": reference,
        "seconds": {"data": round(t_data, 1), "pretrain": round(t_pre, 1), "finetune": round(t_ft, 1),
                    "generate": round(t_gen, 1), "total": round(time.perf_counter() - t_start, 1)},
        "samples": samples[:5],
    }
    print("\n| measure | value |\n|---|---|")
    for key in ("parameters", "pretrain_steps", "finetune_steps", "pretrain_val_loss", "poems_val_loss",
                "heldout_poems", "regular_share", "regular_share_of_real_heldout_poems"):
        v = result[key]
        print(f"| {key} | {v:.3f} |" if isinstance(v, float) else f"| {key} | {v:,} |")
    print(f"| seconds | {result['seconds']} |")
    print(f"| machine | {result['machine']} |")
    for s in samples[:3]:
        print(f"\n{s['generated']}\n  (regular: {s['regular']})")
    out = Path(__file__).parent / "results" / "tang_poetry.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
