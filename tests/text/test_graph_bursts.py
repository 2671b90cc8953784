"""Greedy bursts of several steps per CUDA-graph replay give decode_steps' greedy tokens.

On the CPU the burst's buffers and in-graph ops (argmax, feed-back, position and mask) run without
capture (`capture=False`); the capture itself is checked where CUDA is present.
"""

from __future__ import annotations

import pytest
import torch

from luoxia.text.generate import GenerationConfig, decode_steps
from luoxia.text.graph_bursts import GraphBursts
from luoxia.text.pipeline import TextModel

PROMPTS = ["The quick brown fox", "def main():\n    print('hello')", "落霞与孤鹜齐飞，秋水共长天一色。"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir), device="cpu")  # the CPU paths, also where CUDA is present


def equal_length(tiny: TextModel, n: int) -> list[list[int]]:
    """Rows of one length (no padding): rotations of one prompt."""
    ids = tiny.tokenizer.encode(PROMPTS[2])
    return [ids[i:] + ids[:i] for i in range(n)]


def plain(tiny: TextModel, prompts: list[list[int]], n: int, eos: list[int] = ()) -> list[list[int]]:
    config = GenerationConfig(max_new_tokens=n, ignore_eos=not eos)
    return [t.tolist() for t in decode_steps(tiny.model, prompts, config, list(eos), 0)]


def bursts(tiny: TextModel, prompts: list[list[int]], n: int, steps: int, eos: list[int] = (),
           runner: GraphBursts | None = None) -> list[list[int]]:
    runner = runner or GraphBursts(tiny.model, steps=steps, capture=False)
    return [t.tolist() for t in runner.generate(prompts, n, eos)]


def padded(tiny: TextModel) -> list[list[int]]:
    """Rows of three lengths, left-padded to the longest."""
    return [tiny.tokenizer.encode(p) for p in PROMPTS]


@pytest.mark.parametrize("steps", [1, 3, 8])
@pytest.mark.parametrize("rows", ["one", "three", "padded"])
def test_bursts_give_the_greedy_tokens_of_decode_steps(tiny, steps, rows):
    prompts = {"one": equal_length(tiny, 1), "three": equal_length(tiny, 3), "padded": padded(tiny)}[rows]
    for n in (1, 7, 20):  # less than, not a multiple of, and several bursts
        assert bursts(tiny, prompts, n, steps) == plain(tiny, prompts, n)


@pytest.mark.parametrize("rows", ["three", "padded"])
def test_rows_that_end_inside_a_burst_get_padding_and_all_ended_stops(tiny, rows):
    prompts = equal_length(tiny, 3) if rows == "three" else padded(tiny)
    free = plain(tiny, prompts, 20)
    eos = [free[5][1]]  # the token row 1 makes sixth: it ends there, mid-burst, the others maybe later
    got = bursts(tiny, prompts, 20, steps=4, eos=eos)
    assert got == plain(tiny, prompts, 20, eos)
    assert got[6][1] == 0 and len(got) <= 20


def test_one_runner_serves_generations_of_other_lengths_from_its_caches(tiny):
    runner = GraphBursts(tiny.model, steps=4, capture=False)
    long = equal_length(tiny, 1)
    first = bursts(tiny, long, 30, 4, runner=runner)  # leaves keys further on than the next one reaches
    short = [tiny.tokenizer.encode(PROMPTS[0])]
    assert bursts(tiny, short, 9, 4, runner=runner) == plain(tiny, short, 9)  # stale keys are masked
    assert bursts(tiny, long, 30, 4, runner=runner) == first == plain(tiny, long, 30)
    assert len(runner._bursts) == 1
    rows = padded(tiny)  # padding after none, none after padding, in one batch size's burst
    for prompts in (rows, equal_length(tiny, 3), rows):
        assert bursts(tiny, prompts, 11, 4, runner=runner) == plain(tiny, prompts, 11)
    assert len(runner._bursts) == 2


def test_bad_input_is_refused_with_the_fix(tiny):
    runner = GraphBursts(tiny.model, capture=False)
    ids = [tiny.tokenizer.encode(p) for p in PROMPTS[:2]]
    for prompts in ([], [ids[0], []]):
        with pytest.raises(ValueError, match="at least one"):
            next(runner.generate(prompts, 4))
    with pytest.raises(ValueError, match="max_new_tokens"):
        next(runner.generate(ids[:1], 0))
    with pytest.raises(ValueError, match="steps"):
        GraphBursts(tiny.model, steps=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_captured_bursts_replay_the_eager_tokens(tiny_llama_dir):
    model = TextModel.load(str(tiny_llama_dir), device="cuda", dtype="float32", quant="none")
    runner = GraphBursts(model.model, steps=8)
    assert runner.capture
    for prompts in (equal_length(model, 1), equal_length(model, 3), padded(model)):
        assert bursts(model, prompts, 21, 8, runner=runner) == plain(model, prompts, 21)
        assert bursts(model, prompts, 21, 8, runner=runner) == plain(model, prompts, 21)  # the graph replayed


@pytest.fixture()
def bursting(tiny_llama_dir):
    """A CPU model set up as `--compile` sets one up on CUDA: a graphed step and bursts, here uncaptured."""
    from luoxia.text.cuda_graph import GraphedDecodeStep

    model = TextModel.load(str(tiny_llama_dir), device="cpu")
    model.decode_step = GraphedDecodeStep(model.model, capture=False)
    model.bursts = GraphBursts(model.model, steps=4, capture=False)
    return model


def test_greedy_generation_goes_through_the_bursts_and_gives_the_same_text(tiny, bursting):
    bursting.warm_up()  # sets up (on CUDA: captures) the bursts of the usual cache length
    assert len(bursting.bursts._bursts) == 1
    for prompt in PROMPTS:
        expected = tiny.generate(prompt, max_new_tokens=13)
        got = bursting.generate(prompt, max_new_tokens=13)
        assert (got.text, got.token_ids, got.finish_reason) == (expected.text, expected.token_ids,
                                                                 expected.finish_reason)
    assert len(bursting.bursts._bursts) == 1 and not bursting.bursts.lock.locked()


def test_greedy_batches_go_through_the_bursts_too(tiny, bursting):
    expected = tiny.generate(PROMPTS, max_new_tokens=10)
    got = bursting.generate(PROMPTS, max_new_tokens=10)
    assert [(r.text, r.token_ids) for r in got] == [(r.text, r.token_ids) for r in expected]
    assert (3, 256) in bursting.bursts._bursts and not bursting.bursts.lock.locked()


@pytest.mark.parametrize("params", [dict(do_sample=True, seed=3), dict(repetition_penalty=1.3),
                                    dict(min_new_tokens=4)])
def test_sampling_and_logit_processors_decode_step_by_step(tiny, bursting, params):
    got = bursting.generate(PROMPTS[0], max_new_tokens=9, **params)
    assert got.token_ids == tiny.generate(PROMPTS[0], max_new_tokens=9, **params).token_ids
    assert not bursting.bursts._bursts  # never used


def test_a_generation_while_the_bursts_are_busy_decodes_step_by_step(tiny, bursting):
    first = iter(bursting.stream(PROMPTS[1], max_new_tokens=12))
    piece = next(first)  # holds the bursts
    assert bursting.bursts.lock.locked()
    assert bursting.generate(PROMPTS[2], max_new_tokens=9).token_ids == \
        tiny.generate(PROMPTS[2], max_new_tokens=9).token_ids
    assert piece + "".join(first) == tiny.generate(PROMPTS[1], max_new_tokens=12).text
    assert not bursting.bursts.lock.locked()
