"""Generation with a tiny untrained model: the grammar keeps every output well formed, a melody stays
the soprano, bar counts are exact, the window slides past the context, bad prompts are refused."""

from __future__ import annotations

import dataclasses

import pytest
from music_fixtures import chorale_like, make_music_model

from luoxia.core.errors import InvalidParameterError, PromptTooLongError
from luoxia.music import tokens
from luoxia.music.grammar import Grammar
from luoxia.music.keys import Key, estimate_key
from luoxia.music.pipeline import MusicModel, SamplingParams, _slide
from luoxia.music.score import Note, Piece


@pytest.fixture(scope="module")
def model(tiny_music_model) -> MusicModel:
    return MusicModel.load(str(tiny_music_model))


def test_compose_exact_bars_in_the_key(model):
    piece = model.generate(bars=3, key=Key(2, True), seed=0)
    assert 0 < piece.end <= 3 * 16 and all(0 <= n.voice < 4 for n in piece.notes)
    again = model.generate(bars=3, key=Key(2, True), seed=0)
    assert again.notes == piece.notes  # same seed, same piece
    other = model.generate(bars=3, key=Key(2, True), seed=1)
    assert other.notes != piece.notes


def test_the_grammar_orders_every_sampled_token(model):
    grammar = Grammar(16, 36)
    header = [tokens.BOS, tokens.ID["Key_A_minor"], tokens.ID["TS_3/4"]]  # 12 ticks a bar: 36 = 3 bars
    for t in header:
        grammar.advance(t)
    seq = model._sample(header, grammar, SamplingParams(temperature=1.5), seed=3, max_tokens=2000)
    kinds = [tokens.kind(t) for t in seq]
    assert kinds[3] == "Bar" and seq[-1] == tokens.EOS and kinds.count("Bar") == 3
    assert all(int(tokens.value(t)) < 12 for t in seq if tokens.kind(t) == "Pos")
    for a, b in zip(kinds, kinds[1:]):
        if a == "Voice":
            assert b == "Pitch"
        if a == "Pitch":
            assert b == "Dur"


def test_harmonise_keeps_the_melody_as_soprano(model):
    melody = Piece([Note(4 * i, 0, p, 4 if i % 3 else 8) for i, p in enumerate([72, 74, 76, 77, 76, 74, 72, 71])])
    out = model.generate(melody=melody, seed=0, params=SamplingParams(temperature=1.0, top_k=20))
    assert [(n.start, n.pitch, n.duration) for n in out.voice(0)] == [(n.start, n.pitch, n.duration)
                                                                      for n in melody.notes]
    assert out.end <= melody.n_bars * 16


def test_continue_keeps_the_prompt(model):
    prompt = chorale_like(2)
    out = model.generate(prompt=prompt, bars=2, seed=0, params=SamplingParams(top_p=0.9))
    assert set(prompt.notes) <= set(out.notes) and len(out.notes) > len(prompt.notes)
    assert out.end <= 4 * 16


def test_key_moves_the_prompt(model):
    out = model.generate(prompt=chorale_like(1), bars=1, key=Key(7), seed=0)
    moved = [dataclasses.replace(n, pitch=n.pitch - 5) for n in chorale_like(1).notes]
    assert set(moved) <= set(out.notes)
    assert estimate_key(out.bars(0, 1)) == Key(7)


def test_long_generation_slides_the_window(tmp_path):
    small = MusicModel.load(str(make_music_model(tmp_path / "m", context=64)))
    piece = small.generate(bars=6, key=Key(0), seed=0, params=SamplingParams(temperature=1.0))
    assert piece.end <= 6 * 16 and piece.notes


def test_prompt_longer_than_the_context(tmp_path):
    small = MusicModel.load(str(make_music_model(tmp_path / "m", context=64)))
    with pytest.raises(PromptTooLongError, match="context of 64"):
        small.generate(prompt=chorale_like(4), bars=1)


def test_slide_keeps_header_and_starts_at_a_bar():
    seq = tokens.encode(chorale_like(4), Key(0), eos=False)
    kept = _slide(seq, 60)
    assert kept[:3] == seq[:3] and kept[3] == tokens.BAR and len(kept) <= 63


@pytest.mark.parametrize("kwargs, message", [({"temperature": -1}, "temperature"), ({"top_p": 0}, "top_p"),
                                             ({"top_k": 0}, "top_k")])
def test_bad_sampling_parameters(kwargs, message):
    with pytest.raises(InvalidParameterError, match=message):
        SamplingParams(**kwargs).validate()


def test_loss_is_finite(model):
    loss = model.loss([(chorale_like(2), Key(0))])
    assert 0 < loss < 10  # an untrained model: about log(vocabulary size) = 5.3
