"""The engine's continuous batching: a request that arrives mid-batch joins it and need not wait."""

from __future__ import annotations

import asyncio

from luoxia.serve.engine import TextEngine
from luoxia.text.pipeline import GenerationResult


async def collect(job) -> GenerationResult:
    result = None
    async for _, event in job.results():
        if isinstance(event, GenerationResult):
            result = event
    return result


def test_a_request_joins_the_running_batch_and_ends_before_it(serve_text):
    engine = TextEngine(serve_text, max_batch=4, batch_window_s=0)
    long_prompt, short_prompt = "The quick brown fox", "She sells sea shells by the sea shore"

    async def main() -> tuple[GenerationResult, GenerationResult, bool]:
        long = engine.submit([serve_text.prepare(long_prompt, max_new_tokens=600, ignore_eos=True)])
        long_task = asyncio.create_task(collect(long))
        while engine.stats.active < 1:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # some steps in
        short = await collect(engine.submit([serve_text.prepare(short_prompt, max_new_tokens=8, ignore_eos=True)]))
        long_still_running = not long_task.done()
        return short, await long_task, long_still_running

    try:
        short, long, long_still_running = asyncio.run(main())
    finally:
        engine.close()
    assert long_still_running
    assert engine.stats.joined == 1 and engine.stats.batches == 1 and engine.stats.requests == 2
    assert short.text == serve_text.generate(short_prompt, max_new_tokens=8, ignore_eos=True).text
    assert long.text == serve_text.generate(long_prompt, max_new_tokens=600, ignore_eos=True).text
    assert short.provenance.stats["batch_size"] == 2 and len(long.token_ids) == 600


def test_other_settings_wait_for_the_running_batch_and_seeded_requests_run_alone(serve_text):
    engine = TextEngine(serve_text, max_batch=4, batch_window_s=0)

    async def main() -> list[GenerationResult]:
        jobs = [engine.submit([serve_text.prepare("The quick", max_new_tokens=30, ignore_eos=True)]),
                engine.submit([serve_text.prepare("The quick", max_new_tokens=5, do_sample=True, seed=1)]),
                engine.submit([serve_text.prepare("She sells", max_new_tokens=5, ignore_eos=True)])]
        return list(await asyncio.gather(*(collect(job) for job in jobs)))

    try:
        greedy, seeded, later = asyncio.run(main())
    finally:
        engine.close()
    assert engine.stats.batches == 3 and engine.stats.joined == 0  # the third did not overtake the seeded one
    assert seeded.text == serve_text.generate("The quick", max_new_tokens=5, do_sample=True, seed=1).text
    assert later.text == serve_text.generate("She sells", max_new_tokens=5, ignore_eos=True).text
    assert len(greedy.token_ids) == 30


def test_requests_with_other_sampling_settings_join_the_same_batch(serve_text):
    engine = TextEngine(serve_text, max_batch=4, batch_window_s=0)
    plain = dict(max_new_tokens=300, ignore_eos=True)
    penalised = dict(max_new_tokens=8, ignore_eos=True, repetition_penalty=1.5)
    top_one = dict(max_new_tokens=8, ignore_eos=True, do_sample=True, temperature=0.7, top_k=1)  # a sampled row

    async def main() -> list[GenerationResult]:
        first = engine.submit([serve_text.prepare("The quick brown fox", **plain)])
        first_task = asyncio.create_task(collect(first))
        while engine.stats.active < 1:
            await asyncio.sleep(0.005)
        later = [engine.submit([serve_text.prepare("She sells sea shells", **penalised)]),
                 engine.submit([serve_text.prepare("Numbers like 2024", **top_one)])]
        return [*await asyncio.gather(*(collect(job) for job in later)), await first_task]

    try:
        got = asyncio.run(main())
    finally:
        engine.close()
    assert engine.stats.batches == 1 and engine.stats.joined == 2
    for result, (prompt, settings) in zip(got, [("She sells sea shells", penalised),
                                                ("Numbers like 2024", top_one), ("The quick brown fox", plain)]):
        assert result.text == serve_text.generate(prompt, **settings).text, prompt
