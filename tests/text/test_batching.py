"""Continuous batching: rows that join a running batch get the tokens they would get alone."""

from __future__ import annotations

import pytest
import torch

from luoxia.safety.watermark import WatermarkConfig
from luoxia.text.batching import RunningBatch, joinable
from luoxia.text.generate import GenerationConfig, decode_steps
from luoxia.text.pipeline import TextModel

PROMPTS = ["The quick brown fox", "def main():\n    print('hello')", "落霞与孤鹜齐飞，秋水共长天一色。",
           "She sells sea shells by the sea shore, and the shells she sells", "Numbers like 2024"]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> TextModel:
    return TextModel.load(str(tiny_llama_dir))


def alone(tiny: TextModel, ids: list[int], n: int) -> list[int]:
    config = GenerationConfig(max_new_tokens=n, ignore_eos=True)
    return [int(t[0]) for t in decode_steps(tiny.model, [ids], config, [], 0)]


def run_schedule(tiny: TextModel, schedule: dict[int, list[tuple[str, int]]], compact_every: int = 0) -> dict:
    """Join each (prompt, max_new_tokens) at the step the schedule says; {(prompt, n): tokens it got}."""
    batch = RunningBatch(tiny.model, GenerationConfig(), pad_id=0)
    owner: dict[int, tuple[str, int]] = {}
    got: dict[tuple[str, int], list[int]] = {}
    step = 0
    while step <= max(schedule) or batch.live_rows:
        if step in schedule:
            prompts = [tiny.tokenizer.encode(p) for p, _ in schedule[step]]
            for row, job in zip(batch.add(prompts, [n for _, n in schedule[step]]), schedule[step]):
                owner[row] = job
                got[job] = []
        if batch.live_rows:
            for row, token in batch.step().items():
                got[owner[row]].append(token)
                if len(got[owner[row]]) == owner[row][1]:
                    batch.free(row)
            if compact_every and step % compact_every == 0:
                owner = {new: owner[old] for old, new in batch.compact().items()}
            batch.advance()
        step += 1
    return got


def test_rows_joining_at_any_step_get_their_solo_tokens(tiny):
    schedule = {0: [(PROMPTS[0], 12), (PROMPTS[1], 5)],  # two start together
                3: [(PROMPTS[2], 9)],  # a longer prompt than the batch's column: the cache grows left
                7: [(PROMPTS[3], 20), (PROMPTS[4], 3)],  # one reuses the row freed at step 5
                30: [(PROMPTS[0], 4)]}  # after the batch emptied
    got = run_schedule(tiny, schedule)
    for joins in schedule.values():
        for prompt, n in joins:
            assert got[prompt, n] == alone(tiny, tiny.tokenizer.encode(prompt), n), prompt


def test_compacting_keeps_every_row_on_track(tiny):
    schedule = {0: [(PROMPTS[0], 16), (PROMPTS[1], 3), (PROMPTS[2], 4)], 2: [(PROMPTS[3], 10)], 9: [(PROMPTS[4], 6)]}
    got = run_schedule(tiny, schedule, compact_every=2)
    for joins in schedule.values():
        for prompt, n in joins:
            assert got[prompt, n] == alone(tiny, tiny.tokenizer.encode(prompt), n), prompt


def test_compact_drops_free_rows_and_unused_columns(tiny):
    batch = RunningBatch(tiny.model, GenerationConfig(), pad_id=0)
    long, short = tiny.tokenizer.encode(PROMPTS[3]), tiny.tokenizer.encode(PROMPTS[0])
    rows = batch.add([long, short], [4, 8])
    batch.step()
    batch.free(rows[0])
    columns = batch.tokens.shape[1]
    assert batch.compact() == {rows[1]: 0}
    assert batch.rows == 1 and batch.tokens.shape[1] == columns - (len(long) - len(short))
    assert batch.compact() == {0: 0}


def test_settings_that_count_from_a_prompt_length_cannot_join():
    assert joinable(GenerationConfig(do_sample=True, temperature=0.7, top_p=0.9, repetition_penalty=1.2))
    for unjoinable in (dict(min_new_tokens=3), dict(frequency_penalty=0.5), dict(presence_penalty=0.5),
                       dict(no_repeat_ngram_size=2), dict(num_beams=2), dict(prompt_lookup_num_tokens=4)):
        assert not joinable(GenerationConfig(**unjoinable)), unjoinable


def test_sampled_rows_draw_from_one_generator(tiny):
    generator = torch.Generator().manual_seed(0)
    config = GenerationConfig(do_sample=True, temperature=0.9)
    batch = RunningBatch(tiny.model, config, pad_id=0, generator=generator)
    batch.add([tiny.tokenizer.encode(p) for p in PROMPTS[:2]], [5, 5])
    first = [batch.step()]
    batch.advance()
    assert set(first[0]) == {0, 1} and all(0 <= t < tiny.model.config.vocab_size for t in first[0].values())


def test_a_batch_that_rows_keep_joining_can_drop_its_old_columns(tiny):
    batch = RunningBatch(tiny.model, GenerationConfig(), pad_id=0)
    prompt = tiny.tokenizer.encode(PROMPTS[0])
    owner = {batch.add([prompt], [6])[0]: 6}
    for _ in range(40):  # a new row every 3 steps, each living 6 steps
        for row in batch.step():
            owner[row] -= 1
            if owner[row] == 0:
                batch.free(row)
                del owner[row]
        batch.advance()
        if batch.cur % 3 == 0:
            owner.update({row: 6 for row in batch.add([prompt], [6])})
    assert batch.unused_columns() > 25
    columns = batch.tokens.shape[1]
    batch.compact()
    assert batch.unused_columns() == 0 and batch.tokens.shape[1] <= columns - 25


def test_rows_keep_their_own_sampling_settings(tiny):
    # Watermarks with a large bias change the greedy text, each key its own way: a row given another
    # row's processors would show it.
    settings = [GenerationConfig(max_new_tokens=10, ignore_eos=True),
                GenerationConfig(max_new_tokens=10, ignore_eos=True, watermark=WatermarkConfig("a", delta=20)),
                GenerationConfig(max_new_tokens=10, ignore_eos=True, watermark=WatermarkConfig("b", delta=20),
                                 do_sample=True, top_k=1, temperature=0.5)]
    prompts = [tiny.tokenizer.encode(PROMPTS[0])] * 3
    solo = [[int(t[0]) for t in decode_steps(tiny.model, [ids], config, [], 0)]
            for ids, config in zip(prompts, settings)]
    assert len({tuple(tokens) for tokens in solo}) == 3
    batch = RunningBatch(tiny.model, GenerationConfig(), pad_id=0)
    rows = batch.add(prompts[:2], [10, 10], settings[:2])
    got = {row: [] for row in rows}
    for step in range(10):
        if step == 3:  # a sampled row joins the greedy ones
            rows += batch.add(prompts[2:], [10], settings[2:])
            got[rows[2]] = []
        for row, token in batch.step().items():
            got[row].append(token)
        batch.advance()
    assert [got[row] for row in rows] == [solo[0], solo[1], solo[2][:7]]
    assert len(batch.chains) == 3
