"""The temporal UNet: a fresh one is exactly the per-frame image model; trained temporal layers mix frames."""

from __future__ import annotations

import torch
from video_fixtures import tiny_video_net

from luoxia.image.text_encoder import TextBatch
from luoxia.video.model import TemporalAttention


def _text(b: int) -> TextBatch:
    g = torch.Generator().manual_seed(1)
    return TextBatch(torch.randn(b, 5, 384, generator=g), torch.ones(b, 5, dtype=torch.bool),
                     torch.randn(b, 384, generator=g))


def test_zero_init_equals_the_per_frame_image_model():
    net = tiny_video_net()
    with torch.no_grad():
        net.unet.conv_out.weight.normal_(0, 0.1)  # the image model's own output layer, not zero
    B, T = 2, 4
    x = torch.randn(B, T, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 700])
    c = _text(B)
    with torch.no_grad():
        video = net(x, t, context=c.tokens, context_mask=c.mask, pooled=c.pooled)
        per = lambda y: y.repeat_interleave(T, dim=0)
        image = net.unet(x.reshape(B * T, 3, 16, 16), per(t), context=per(c.tokens), context_mask=per(c.mask),
                         pooled=per(c.pooled))
    assert video.shape == x.shape
    assert torch.equal(video.reshape(B * T, 3, 16, 16), image)


def test_trained_temporal_layers_let_frames_see_each_other():
    net = tiny_video_net()
    with torch.no_grad():
        net.unet.conv_out.weight.normal_(0, 0.1)
        for block in net.temporal:
            block.proj.weight.normal_(0, 0.1)
    x = torch.randn(1, 4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 0] += 1.0  # change only the first frame
    c = _text(1)
    kw = dict(context=c.tokens, context_mask=c.mask, pooled=c.pooled)
    with torch.no_grad():
        a, b = net(x, torch.tensor([500]), **kw), net(y, torch.tensor([500]), **kw)
    assert not torch.allclose(a[:, 1:], b[:, 1:])  # the other frames' outputs moved too


def test_temporal_attention_is_an_identity_at_init_and_keeps_shapes():
    block = TemporalAttention(8, 2, 4)
    h = torch.randn(6, 8, 4, 4)  # B·T = 2·3
    assert torch.equal(block(h, 3), h)


def test_clip_length_other_than_trained_works():
    net = tiny_video_net(frames=4)
    c = _text(1)
    with torch.no_grad():
        out = net(torch.randn(1, 7, 3, 16, 16), torch.tensor([3]), context=c.tokens, context_mask=c.mask,
                  pooled=c.pooled)
    assert out.shape == (1, 7, 3, 16, 16)
