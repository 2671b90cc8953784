"""The server through the official `openai` client: results equal the engine's, labels verify."""

from __future__ import annotations

import concurrent.futures

import pytest

from luoxia.serve.labelling import NOTICE_SUFFIX, verify_text

openai = pytest.importorskip("openai")


def labels_of(choice) -> dict:
    return {"aigc": choice.model_extra["aigc"], "provenance": choice.model_extra["provenance"]}


def test_models_lists_the_served_model(client, server):
    assert [m.id for m in client.models.list().data] == [server.text.name]


def test_greedy_completion_equals_the_engine_and_is_labelled(client, server):
    reply = client.completions.create(model=server.text.name, prompt="The quick", max_tokens=12, temperature=0)
    choice = reply.choices[0]
    expected = server.text.generate("The quick", max_new_tokens=12)
    assert choice.text == expected.text + NOTICE_SUFFIX
    assert choice.finish_reason == {"eos": "stop", "length": "length"}[expected.finish_reason]
    assert verify_text(choice.text, labels_of(choice)) == "ok"
    assert verify_text("x" + choice.text, labels_of(choice)) == "tampered"
    assert labels_of(choice)["aigc"]["Label"] == "1"
    assert reply.usage.completion_tokens == len(expected.token_ids)
    assert reply.usage.prompt_tokens == len(server.text.encode_prompt("The quick"))


def test_chat_equals_the_engine_and_a_notice_sent_back_is_stripped(client, server):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    reply = client.chat.completions.create(model=server.text.name, messages=messages, max_tokens=10, temperature=0)
    content = reply.choices[0].message.content
    assert content == server.text.chat(messages, max_new_tokens=10).text + NOTICE_SUFFIX
    # The next turn sends the answer back with its notice: the model must not see the notice.
    follow = [*messages, {"role": "assistant", "content": content}, {"role": "user", "content": "More"}]
    again = client.chat.completions.create(model=server.text.name, messages=follow, max_tokens=6, temperature=0)
    clean = [*messages, {"role": "assistant", "content": content.removesuffix(NOTICE_SUFFIX)},
             {"role": "user", "content": "More"}]
    assert again.choices[0].message.content == server.text.chat(clean, max_new_tokens=6).text + NOTICE_SUFFIX


def test_streamed_chat_adds_up_to_the_whole_answer(client, server):
    messages = [{"role": "user", "content": "Tell me about foxes"}]
    whole = client.chat.completions.create(model=server.text.name, messages=messages, max_tokens=16, temperature=0)
    chunks = list(client.chat.completions.create(model=server.text.name, messages=messages, max_tokens=16,
                                                 temperature=0, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == whole.choices[0].finish_reason
    assert verify_text(text, {"aigc": last.model_extra["aigc"], "provenance": last.model_extra["provenance"]}) == "ok"
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_streamed_completion_with_several_choices_and_a_seed_repeats(client, server):
    def run() -> dict[int, str]:
        texts: dict[int, str] = {}
        for chunk in client.completions.create(model=server.text.name, prompt="She sells", max_tokens=10, n=3,
                                               temperature=0.9, seed=7, stream=True):
            for choice in chunk.choices:
                texts[choice.index] = texts.get(choice.index, "") + choice.text
        return texts

    first = run()
    assert sorted(first) == [0, 1, 2]
    assert all(t.endswith(NOTICE_SUFFIX) for t in first.values())
    assert run() == first  # a seeded request runs alone, so it repeats exactly


def test_stop_strings_and_extensions(client, server):
    expected = server.text.generate("The quick", max_new_tokens=20, repetition_penalty=1.3)
    cut = expected.text[3:5]
    if not cut.strip():
        pytest.skip("the tiny model's text has no usable stop string here")
    reply = client.completions.create(model=server.text.name, prompt="The quick", max_tokens=20, temperature=0,
                                      stop=[cut], extra_body={"repetition_penalty": 1.3})
    assert reply.choices[0].text == expected.text[:expected.text.index(cut)] + NOTICE_SUFFIX
    assert reply.choices[0].finish_reason == "stop"


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(client, server):
    prompts = ["The quick", "She sells", "def main", "Numbers like", "落霞与", "床前明月", "The lazy", "sea shells"]
    expected = {p: server.text.generate(p, max_new_tokens=8).text + NOTICE_SUFFIX for p in prompts}
    batches_before = server.engine.stats.batches
    with concurrent.futures.ThreadPoolExecutor(len(prompts)) as pool:
        replies = dict(zip(prompts, pool.map(
            lambda p: client.completions.create(model=server.text.name, prompt=p, max_tokens=8, temperature=0),
            prompts)))
    assert {p: r.choices[0].text for p, r in replies.items()} == expected
    assert server.engine.stats.batches - batches_before < len(prompts)  # some shared a batch
    assert server.engine.stats.largest_batch > 1


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"temperature": 5}, "temperature"),
    ({"max_tokens": 100_000}, "max_tokens"),
    ({"n": 50}, "n"),
    ({"extra_body": {"temprature": 0.5}}, "temprature"),
    ({"logprobs": 3}, "logprobs"),
    ({"extra_body": {"visible_label": False}}, "visible_label"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
])
def test_bad_parameters_are_400_with_the_parameter_named(client, server, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=server.text.name, prompt="Hi", **kwargs)
    assert e.value.status_code == 400
    assert e.value.body["param"] == param
    assert e.value.body["message"]


def test_prompt_too_long_names_the_context(client, server):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=server.text.name, prompt="fox " * 5000, max_tokens=4)
    assert e.value.body["code"] == "context_length_exceeded"
    assert "context window" in e.value.body["message"]


def test_unknown_model_is_404_and_a_wrong_key_401(client, server):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-4o", prompt="Hi", max_tokens=2)
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=server.text.name, messages=[{"role": "user", "content": "x"}])


def test_images_without_an_image_model_is_a_clear_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.images.generate(prompt="a small red circle at the top left")
    assert "--image-model" in e.value.body["message"]


@pytest.mark.slow
def test_the_embedded_model_answers_through_the_api():
    from serve_helpers import start_server

    from luoxia.serve.app import create_app
    from luoxia.serve.config import ServeConfig
    from luoxia.text.pipeline import TextModel

    text = TextModel.load("smollm2")  # the default: int4 on the CPU, as `luoxia serve` runs it
    running = start_server(create_app(ServeConfig(), text), text)
    try:
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key="none", max_retries=0, timeout=120)
        reply = client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": "What is the capital of France? One word."}],
            max_tokens=20, temperature=0)
        assert "Paris" in reply.choices[0].message.content
        assert reply.choices[0].message.content.endswith(NOTICE_SUFFIX)
        assert reply.choices[0].model_extra["provenance"]["model_sha256"] == text.sha256
    finally:
        running.stop()


def test_more_rows_than_a_batch_is_400(client, server):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=server.text.name, prompt=["a"] * 9, n=2, max_tokens=2)
    assert e.value.body["param"] == "prompt" and "at once" in e.value.body["message"]


def test_a_prediction_leaves_the_answer_and_reports_its_drafts(client, server):
    """OpenAI's predicted outputs: the answer is the one without it; usage counts the drafts kept and dropped
    (how many are kept is tested on the embedded model, tests/text/test_speculative.py)."""
    messages = [{"role": "user", "content": "Tell me about foxes"}]
    plain = client.chat.completions.create(model=server.text.name, messages=messages, max_tokens=24, temperature=0)
    answer = plain.choices[0].message.content.removesuffix(NOTICE_SUFFIX)
    predicted = client.chat.completions.create(model=server.text.name, messages=messages, max_tokens=24,
                                               temperature=0, prediction={"type": "content", "content": answer})
    assert predicted.choices[0].message.content == plain.choices[0].message.content
    details = predicted.usage.completion_tokens_details
    speculation = predicted.choices[0].model_extra["provenance"]["stats"]["speculation"]
    assert details.accepted_prediction_tokens == speculation["accepted"]
    assert details.accepted_prediction_tokens + details.rejected_prediction_tokens == speculation["drafted"] > 0
    assert plain.usage.completion_tokens_details is None
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=server.text.name, messages=messages, max_tokens=4,
                                       prediction={"type": "file", "content": answer})
    assert e.value.body["param"].startswith("prediction")
