"""Decode attention on the CPU: luoxia's kernel (`src/luoxia/text/decode_attention.py`) against PyTorch's
`scaled_dot_product_attention`, same shapes, same run.

Shapes are the embedded SmolLM2-135M's (9 query heads on 3 key heads, 64 wide); each call reads the first S
columns of one of 30 layers' preallocated caches in turn, as a decode step does, so the caches come from memory
rather than the processor's cache. PyTorch attends over a float32 cache (it is slow in bfloat16 without AMX);
the kernel over float32 and over bfloat16. Each time is the median of --repeats, in µs a layer.

    .venv/bin/python benchmarks/decode_attention.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from luoxia.text import decode_attention

HEADS, KEY_HEADS, WIDTH, LAYERS = 9, 3, 64, 30
# (rows, cached positions, new tokens): a 16-row step at the middle and the end of 128 tokens after a 32-token
# prompt, a one-row step, a one-row check of 8 drafted tokens (speculative decoding)
CASES = [(16, 96, 1), (16, 160, 1), (1, 96, 1), (1, 96, 9)]


def per_layer_us(fn, repeats: int, calls: int = 10) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls / LAYERS * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not decode_attention.KERNEL.load():
        raise SystemExit(f"the kernel could not be built: {decode_attention.KERNEL.failure()}")
    print(f"{'rows':>4} {'S':>4} {'T':>2} | {'torch f32':>9} {'ours f32':>8} {'ours bf16':>9} | "
          f"{'f32 ratio':>9} {'bf16 ratio':>10}")
    for rows, length, tokens in CASES:
        theirs, ours_f32, ours_bf16 = time_case(rows, length, tokens, args.repeats)
        print(f"{rows:>4} {length:>4} {tokens:>2} | {theirs:>9.1f} {ours_f32:>8.1f} {ours_bf16:>9.1f} | "
              f"{theirs / ours_f32:>8.2f}x {theirs / ours_bf16:>9.2f}x")


def time_case(rows: int, length: int, tokens: int, repeats: int) -> tuple[float, float, float]:
    """µs a layer: PyTorch over a float32 cache, the kernel over float32, the kernel over bfloat16."""
    kernel = torch.ops.luoxia.decode_attention
    torch.manual_seed(0)
    q = torch.randn(rows, HEADS, tokens, WIDTH)
    mask = torch.ones(rows, 1, tokens, length, dtype=torch.bool).tril(length - tokens)
    mask[: rows // 4, :, :, :5] = False  # some rows left-padded
    capacity = 160 if rows > 1 else 2048
    keys = [torch.randn(rows, KEY_HEADS, capacity, WIDTH)[:, :, :length] for _ in range(LAYERS)]
    values = [torch.randn(rows, KEY_HEADS, capacity, WIDTH)[:, :, :length] for _ in range(LAYERS)]
    keys16, values16 = [k.bfloat16() for k in keys], [v.bfloat16() for v in values]

    def torch_f32():
        for k, v in zip(keys, values):
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)

    def ours(ks, vs):
        return lambda: [kernel(q, k, v, mask) for k, v in zip(ks, vs)]

    reference = F.scaled_dot_product_attention(q, keys[0], values[0], attn_mask=mask, enable_gqa=True)
    error = (kernel(q, keys[0], values[0], mask) - reference.transpose(1, 2).flatten(2)).abs().max().item()
    assert error < 1e-5, f"the kernel is {error} from PyTorch's attention"
    return (per_layer_us(torch_f32, repeats), per_layer_us(ours(keys, values), repeats),
            per_layer_us(ours(keys16, values16), repeats))

if __name__ == "__main__":
    main()
