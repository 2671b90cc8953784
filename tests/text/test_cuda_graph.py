"""The CUDA-graphed decode step: fixed-shape attention over the whole cache, the graph's own caches.

On the CPU the same buffers, masks and cache handling run without capture (`capture=False`); the
capture itself is checked where CUDA is present.
"""

from __future__ import annotations

import pytest
import torch

from luoxia.text.compiled import compiled_decode_step, inductor_options
from luoxia.text.cuda_graph import BUCKET, GraphedDecodeStep
from luoxia.text.generate import GenerationConfig, decode_steps
from luoxia.text.kv_cache import KVCache
from luoxia.text.pipeline import TextModel
from luoxia.text.speculative import speculative_steps

PROMPTS = ["The quick brown fox", "def main():\n    print('hello')", "落霞与孤鹜齐飞，秋水共长天一色。"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir), device="cpu")  # the CPU paths, also where CUDA is present


def tokens_of(tiny: TextModel, prompts: list[str], n: int, step=None) -> list[list[int]]:
    ids = [tiny.tokenizer.encode(p) for p in prompts]
    config = GenerationConfig(max_new_tokens=n, ignore_eos=True)
    rows = [t.tolist() for t in decode_steps(tiny.model, ids, config, [], 0, one_token_forward=step)]
    return [list(r) for r in zip(*rows)]


def test_tensor_start_writes_at_the_index_and_returns_the_whole_cache():
    cache = KVCache(1, 2, 8, 4, torch.float32)
    k, v = torch.ones(1, 2, 2, 4), torch.full((1, 2, 2, 4), 2.0)
    keys, values = cache.update(torch.tensor(3), k, v)
    assert keys.shape[2] == 8 and values.shape[2] == 8
    assert keys[0, 0, :, 0].tolist() == [0, 0, 0, 1, 1, 0, 0, 0]
    assert values[0, 0, :, 0].tolist() == [0, 0, 0, 2, 2, 0, 0, 0]


def test_graphed_step_gives_the_plain_steps_tokens_alone_and_in_a_padded_batch(tiny):
    step = GraphedDecodeStep(tiny.model, capture=False)
    for prompts in ([PROMPTS[0]], PROMPTS):  # unpadded; left-padded rows of three lengths
        assert tokens_of(tiny, prompts, 12, step) == tokens_of(tiny, prompts, 12)
    assert step.graphs == 2  # batch 1 and batch 3, one cache bucket each


def test_graphed_logits_match_the_plain_forward(tiny):
    ids = tiny.tokenizer.encode(PROMPTS[1])
    step = GraphedDecodeStep(tiny.model, capture=False)
    with torch.inference_mode():
        plain = tiny.model.new_caches(1, len(ids) + 1)
        tiny.model(torch.tensor([ids[:-1]]), plain, 0)
        expected = tiny.model(torch.tensor([ids[-1:]]), plain, len(ids) - 1)
        caches = step.new_caches(1, len(ids) + 1)
        assert caches[0].max_len == BUCKET
        tiny.model(torch.tensor([ids[:-1]]), caches, 0)
        got = step(torch.tensor([ids[-1:]]), caches, len(ids) - 1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_caches_are_reused_across_generations_and_lengths_in_a_bucket(tiny):
    step = GraphedDecodeStep(tiny.model, capture=False)
    first = tokens_of(tiny, [PROMPTS[2]], 30, step)  # fills the cache further than the next one
    assert tokens_of(tiny, [PROMPTS[0]], 5, step) == tokens_of(tiny, [PROMPTS[0]], 5)  # stale keys are masked
    assert tokens_of(tiny, [PROMPTS[2]], 30, step) == first
    assert step.graphs == 1
    assert tokens_of(tiny, [PROMPTS[0]], BUCKET, step) == tokens_of(tiny, [PROMPTS[0]], BUCKET)  # a longer bucket
    assert step.graphs == 2


def test_a_generation_started_while_another_holds_the_caches_runs_on_fresh_ones(tiny):
    step = GraphedDecodeStep(tiny.model, capture=False)
    config = GenerationConfig(max_new_tokens=6, ignore_eos=True)
    ids = [tiny.tokenizer.encode(p) for p in PROMPTS[:2]]
    first = decode_steps(tiny.model, [ids[0]], config, [], 0, one_token_forward=step)
    second = decode_steps(tiny.model, [ids[1]], config, [], 0, one_token_forward=step)
    got = [[], []]
    for a, b in zip(first, second):  # interleaved, as two threads would
        got[0].append(int(a[0]))
        got[1].append(int(b[0]))
    assert got == [tokens_of(tiny, [PROMPTS[0]], 6)[0], tokens_of(tiny, [PROMPTS[1]], 6)[0]]
    assert step.graphs == 1
    # Both ended, so the graph's caches are free again, also after a generation closed early.
    early = decode_steps(tiny.model, [ids[0]], config, [], 0, one_token_forward=step)
    next(early)
    early.close()
    caches = step.new_caches(1, 8)
    assert caches is step._owner[id(caches)].caches
    step.release(caches)


def test_calls_on_caches_it_does_not_own_run_the_plain_forward(tiny):
    ids = tiny.tokenizer.encode("one two three one two three one two")
    config = GenerationConfig(max_new_tokens=16, ignore_eos=True, prompt_lookup_num_tokens=4)
    plain = list(speculative_steps(tiny.model, ids, config, [], None))
    step = GraphedDecodeStep(tiny.model, capture=False)
    assert list(speculative_steps(tiny.model, ids, config, [], None, step)) == plain


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_captured_graph_replays_the_eager_tokens(tiny_llama_dir):
    model = TextModel.load(str(tiny_llama_dir), device="cuda", dtype="float32", quant="none")
    step = GraphedDecodeStep(model.model)
    assert step.capture
    for prompts in ([PROMPTS[0]], PROMPTS):
        assert tokens_of(model, prompts, 20, step) == tokens_of(model, prompts, 20)
    compiled = TextModel.load(str(tiny_llama_dir), device="cuda", dtype="float32", quant="none", compile=True)
    assert isinstance(compiled.decode_step, GraphedDecodeStep)
    assert compiled.generate(PROMPTS[0], max_new_tokens=20).text == model.generate(PROMPTS[0], max_new_tokens=20).text
    fused = compiled_decode_step(model.model, fuse_matvecs=True)  # one-row matmuls as Triton reductions
    assert tokens_of(model, [PROMPTS[0]], 20, fused) == tokens_of(model, [PROMPTS[0]], 20)


def test_matvec_fusion_is_asked_of_inductor_on_cuda_only():
    assert inductor_options("cuda", fuse_matvecs=True)["coordinate_descent_tuning"]
    assert "coordinate_descent_tuning" not in inductor_options("cuda")
    cpu = inductor_options("cpu", fuse_matvecs=True)  # Inductor decomposes one-row matmuls only off the CPU
    assert cpu["cpp_wrapper"] and "coordinate_descent_tuning" not in cpu
    assert all(callable(o["guard_filter_fn"]) for o in (cpu, inductor_options("cuda")))
