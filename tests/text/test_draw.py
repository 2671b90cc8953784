"""`sampling.draw`, the inverse-CDF draw behind every sampled token: its frequencies, its edges, its errors."""

from __future__ import annotations

import pytest
import torch

from luoxia.text import sampling


def weights_over_blocks(vocab: int = 600) -> torch.Tensor:
    """Weights spread over three blocks (the last one padded), with zeros between and at both ends."""
    g = torch.Generator().manual_seed(1)
    w = torch.rand(vocab, generator=g) ** 4
    w[torch.rand(vocab, generator=g) < 0.3] = 0  # scattered zeros
    w[0], w[-1] = 0, 0
    w[[10, 255, 256, 511, 512, vocab - 2]] = torch.tensor([3.0, 2.0, 2.5, 1.0, 4.0, 1.5])  # heavy, at block edges
    return w


def test_frequencies_match_the_weights():
    w = weights_over_blocks()
    p = w / w.sum()
    g = torch.Generator().manual_seed(0)
    rounds, rows = 5, 20_000
    counts = sum(torch.bincount(sampling.draw(w.expand(rows, -1).contiguous(), g), minlength=len(w))
                 for _ in range(rounds))
    n = rounds * rows
    assert counts[p == 0].sum() == 0  # an entry of weight 0 is never drawn
    sigma = (p * (1 - p) / n).sqrt()
    assert ((counts / n - p).abs() <= 5 * sigma + 1e-6).all()
    assert counts.sum() == n


def test_unnormalised_weights_and_softmax_scores_agree():
    scores = torch.randn(1, 49_152, generator=torch.Generator().manual_seed(2)) * 4
    a = sampling.draw(scores.softmax(-1).expand(4_000, -1).contiguous(), torch.Generator().manual_seed(3))
    b = sampling.draw((scores.softmax(-1) * 7.5).expand(4_000, -1).contiguous(), torch.Generator().manual_seed(3))
    assert (a != b).sum() <= 4  # scaling the weights moves a draw only where rounding puts it on a boundary


@pytest.mark.parametrize("hot", [0, 255, 256, 511, 512, 599])
def test_a_single_positive_entry_is_always_drawn(hot):
    w = torch.zeros(3, 600)
    w[:, hot] = torch.tensor([1e-30, 1.0, 1e30])
    assert sampling.draw(w, torch.Generator().manual_seed(0)).tolist() == [hot] * 3


def test_each_row_draws_from_its_own_weights():
    w = torch.zeros(4, 1000)
    for row, hot in enumerate([5, 700, 999, 256]):
        w[row, hot] = 1.0
    assert sampling.draw(w, None).tolist() == [5, 700, 999, 256]


@pytest.mark.parametrize("uniform, expected", [(0.0, 10), (1.0, 598)])
def test_the_ends_of_the_uniform_draw_land_on_positive_entries(monkeypatch, uniform, expected):
    """u = 0 gives the first entry of positive weight, u = total (rounding) the last, never a zero after it."""
    w = weights_over_blocks()
    w[:10] = 0
    real_rand = torch.rand
    monkeypatch.setattr(torch, "rand", lambda *a, **k: real_rand(*a, **k).fill_(uniform))
    assert int(sampling.draw(w[None], None)[0]) == expected


def test_a_seed_repeats():
    w = weights_over_blocks().expand(64, -1).contiguous()
    first = sampling.draw(w, torch.Generator().manual_seed(9))
    assert torch.equal(first, sampling.draw(w, torch.Generator().manual_seed(9)))
    assert not torch.equal(first, sampling.draw(w, torch.Generator().manual_seed(10)))


@pytest.mark.parametrize("bad", [0.0, float("nan"), float("inf")])
def test_rows_that_cannot_be_sampled_are_refused(bad):
    w = torch.ones(2, 300)
    w[1] = bad
    with pytest.raises(ValueError, match="cannot sample"):
        sampling.draw(w, None)


def test_pick_next_samples_through_draw():
    scores = torch.full((2, 300), float("-inf"))
    scores[0, 17], scores[1, 290] = 0.0, 0.0
    assert sampling.pick_next(scores, True, torch.Generator().manual_seed(0)).tolist() == [17, 290]
