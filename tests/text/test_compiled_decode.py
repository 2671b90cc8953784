"""The compiled decode step (`TextModel.load(compile=True)`) gives the eager model's tokens, survives a
change of batch size, and falls back to eager where compiling fails."""

from __future__ import annotations

import shutil

import pytest
import torch

from luoxia.core.compile import compile_or_eager
from luoxia.text.compiled import keep_argument_guards


def test_compiled_generation_matches_eager(tiny_llama_dir, capfd):
    from luoxia.text.pipeline import TextModel

    eager = TextModel.load(str(tiny_llama_dir), quant="none")
    compiled = TextModel.load(str(tiny_llama_dir), quant="none", compile=True)
    assert compiled.load_info["compile"] and compiled.decode_step is not None
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    retraces = torch._dynamo.utils.compilation_time_metrics.setdefault("compile_attempt_1", [])
    retraces_before = len(retraces)
    prompts = ["hello world", "the cat sat on the mat and"]
    for prompt, new in zip(prompts, (12, 5)):  # batch 1, twice, other cache lengths: one graph
        a = eager.generate(prompt, max_new_tokens=new, ignore_eos=True)
        b = compiled.generate(prompt, max_new_tokens=new, ignore_eos=True)
        assert a.token_ids == b.token_ids
    batch_one_graphs = graphs["unique_graphs"] - before
    # Batches, left-padded (a mask and positions per row): new graphs (Dynamo first specialises the mask
    # to batch 2, then generalises); the caches keep their guards, so the batch-1 graph is never reused.
    for rows, new in ((prompts, 8), ([*prompts, "a"], 6)):
        batch_a = eager.generate(rows, max_new_tokens=new, ignore_eos=True)
        batch_b = compiled.generate(rows, max_new_tokens=new, ignore_eos=True)
        assert [r.token_ids for r in batch_a] == [r.token_ids for r in batch_b]
    if graphs["unique_graphs"] > before:  # a compiler fallback compiles nothing
        assert batch_one_graphs == 1  # the cache length (prompt + max_new_tokens) does not recompile
        assert graphs["unique_graphs"] - before <= 3
        assert len(retraces) == retraces_before  # float attributes were not traced as inputs first
    if shutil.which("g++"):  # Inductor's CPU kernels need a C++ compiler; without one the fallback is right
        assert "torch.compile failed" not in capfd.readouterr().err


def test_guard_filter_drops_only_module_guards():
    class Entry:
        def __init__(self, name):
            self.name = name

    names = ["self._modules['layers']", "type(self)", "self.config", "caches[0]", "tokens", "start", ""]
    assert keep_argument_guards([Entry(n) for n in names]) == [False, False, False, True, True, True, True]


def test_compile_failure_falls_back_to_eager(monkeypatch):
    def broken_compile(fn, **kwargs):
        def call(*args, **kw):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    notes = []
    double = compile_or_eager(lambda x: 2 * x, notes.append, "decoding")
    assert double(torch.tensor(3)) == 6 and double(torch.tensor(4)) == 8
    assert notes == ["note: torch.compile failed (RuntimeError: no C++ compiler found); decoding without it"]


def test_real_errors_still_raise(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)

    def bad(x):
        raise ValueError("a bug in the model")

    with pytest.raises(ValueError, match="a bug"):
        compile_or_eager(bad, lambda m: None, "decoding")(1)


def test_warm_up_leaves_nothing_to_compile(tiny_gqa3_dir):
    """With 3 key/value heads, warm-up caches 3 long (a 1-token prompt, 2 new tokens) and batches of 3 rows
    share a size with the heads; Dynamo must not tie them (it did, and the next length compiled again)."""
    from luoxia.text.pipeline import TextModel

    model = TextModel.load(str(tiny_gqa3_dir), quant="none", compile=True)
    assert len(model.encode_prompt("a")) == 1
    model.warm_up()
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    model.generate(["one", "two three", "four five six", "seven", "x y"], max_new_tokens=7, ignore_eos=True)
    model.generate("a longer single prompt than before", max_new_tokens=9, ignore_eos=True)
    for draft in (1, 3, 8):  # speculative decoding's forwards, at other draft lengths
        model._draft_forward(draft)
    model.generate("one two three one two three one two", max_new_tokens=9, prompt_lookup_num_tokens=4,
                   ignore_eos=True)  # and at later positions
    assert graphs["unique_graphs"] == before


def test_warm_up_covers_a_continuous_batch(tiny_gqa3_dir):
    """The server's running batch: rows join and leave, one padded row decodes alone, columns get dropped."""
    from luoxia.text.generate import GenerationConfig
    from luoxia.text.pipeline import TextModel

    model = TextModel.load(str(tiny_gqa3_dir), quant="none", compile=True)
    model.warm_up()
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    batch, _ = model.running_batch(GenerationConfig())
    encode = model.tokenizer.encode
    rows = batch.add([encode("a longer prompt than the next"), encode("two")], [4, 9])
    for step in range(8):
        for row in batch.step():
            if (row, step) == (rows[0], 3):
                batch.free(row)
        if step == 4:
            batch.compact()  # one row left, real from its first column on: no mask
        if step == 5:
            batch.add([encode("a b c d e f")], [2])  # joins padded: batch 2 with a mask
        batch.advance()
    lone = model.running_batch(GenerationConfig())[0]
    first = lone.add([encode("a b c d e f g h")], [2])[0]
    lone.step()
    lone.free(first)
    lone.add([encode("x")], [3])  # reuses the row, left-padded: batch 1 with a mask
    for _ in range(2):
        lone.step()
        lone.advance()
    assert graphs["unique_graphs"] == before


def test_each_model_compiles_its_own_step():
    """Two models of the class, one int4 and one w8a8 with the same caches: the second one compiles too
    (sharing the first one's graph failed and left it eager) and gives its eager logits."""
    from luoxia.text.compiled import compiled_decode_step
    from luoxia.text.model import Transformer
    from luoxia.text.model_config import TransformerConfig
    from luoxia.text.quant import quantize

    def one_step(model, step):
        caches = model.new_caches(1, 8)
        with torch.no_grad():
            model(torch.tensor([[1, 2, 3]]), caches, 0)
            return step(torch.tensor([[5]]), caches, 3).float()

    def random_model(mode: str) -> Transformer:
        model = Transformer(TransformerConfig(vocab_size=128, dim=64, n_layers=2, n_heads=4, ffn_dim=128))
        model.init_weights()  # embeddings are created uninitialised (loaders fill them)
        return quantize(model.eval(), mode)

    torch.manual_seed(0)
    for mode in ("int4", "w8a8"):  # one after the other, as the speed benchmark loads them
        model = random_model(mode)
        notes = []
        step = compiled_decode_step(model, log=notes.append)
        # int4 computes in bfloat16: compiled and eager round differently (one bfloat16 step at ~1.0)
        torch.testing.assert_close(one_step(model, step), one_step(model, model), atol=1e-2, rtol=1e-2)
        if shutil.which("g++"):
            assert notes == [], mode


def test_int4_batches_compile_a_graph_of_their_own(tiny_llama_dir):
    """int4 layers take their w8a8 copy from BATCH_ROWS rows on (`quant.takes_the_copy`), compiled too: warm-up
    compiles that graph as well, and the compiled step gives the eager step's logits on either side."""
    from luoxia.text.aot_step import check_step
    from luoxia.text.pipeline import TextModel
    from luoxia.text.quant import BATCH_ROWS, Int4Linear

    loaded = TextModel.load(str(tiny_llama_dir), quant="int4", compile=True)
    loaded.warm_up()
    graphs = torch._dynamo.utils.counters["stats"]
    before = graphs["unique_graphs"]
    for rows in (BATCH_ROWS - 1, BATCH_ROWS + 2):
        loaded.generate([" ".join(["word"] * (i + 1)) for i in range(rows)], max_new_tokens=5, ignore_eos=True)
    assert graphs["unique_graphs"] == before

    # The copies' scales halved: only calls that take the copy change, by far more than rounding.
    model, step = loaded.model, loaded.decode_step
    for layer in model.modules():
        if isinstance(layer, Int4Linear):
            layer.prefill.scales.mul_(0.5)
    for rows in (BATCH_ROWS - 1, BATCH_ROWS + 2):  # eager: the kernel below BATCH_ROWS, else the copy
        check_step(model, step, rows, counts=(1,))
