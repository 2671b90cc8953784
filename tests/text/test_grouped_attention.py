"""Grouped-query attention folded into key heads (`model.grouped_attention`, the CPU decode path) against
PyTorch's attention with `enable_gqa`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from luoxia.text.model import grouped_attention


@pytest.mark.parametrize("tokens", [1, 3])
@pytest.mark.parametrize("mask_shape", [None, "2d", "4d"])
def test_grouped_attention_matches_sdpa_with_gqa(tokens, mask_shape):
    g = torch.Generator().manual_seed(tokens)
    B, H, K, S, D = 2, 6, 2, 9, 8
    q = torch.randn(B, tokens, H + 2 * K, D, generator=g).transpose(1, 2)[:, :H]  # strided, as the model's
    k, v = torch.randn(B, K, S, D, generator=g), torch.randn(B, K, S, D, generator=g)
    mask = None
    if mask_shape == "2d":  # causal after cached keys (`Transformer.forward`)
        mask = torch.ones(tokens, S, dtype=torch.bool).tril(S - tokens)
    elif mask_shape == "4d":  # padding that differs by row (`generate.padding_mask`)
        mask = torch.rand(B, 1, tokens, S, generator=g) > 0.4
        mask[..., -1] = True
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True).transpose(1, 2)
    got = grouped_attention(q, k, v, mask)
    assert got.shape == (B, tokens, K, H // K, D)
    torch.testing.assert_close(got.flatten(2, 3), expected, atol=1e-6, rtol=1e-5)
