"""Int8 products on the CPU: luoxia's kernels (`src/luoxia/text/int8_matmul.py`: AMX, AVX-512 VNNI for CPUs
without AMX, AVX-VNNI and AVX2 for CPUs without AVX-512) against PyTorch's `torch._int_mm`, the same int8 operands,
the same run. Each kernel this CPU can run gets a table (on an AMX CPU all four run, where luoxia itself would take
the AMX one). To see `_int_mm` as it runs on a CPU without AVX-512, cap oneDNN: `ONEDNN_MAX_CPU_ISA=AVX2_VNNI`.

The weights are a decode step's of the embedded SmolLM2-135M (30 layers of fused query/key/value 960 × 576,
output 576 × 576, gate/up 3,072 × 576 and down 576 × 1,536, then the 49,152 × 576 output projection: 121
products, 134 MB of int8), each its own tensor, multiplied in turn as a step does, so they come from memory
rather than the processor's cache. Per row count: ms for the whole step's products, and µs a product for
each layer shape (its 30 tensors in turn; the output projection's one 10 times, so from the cache after the
first). Medians of --repeats, the two sides' runs alternating. The two give the same integers (checked).

    .venv/bin/python benchmarks/int8_matmul.py
    .venv/bin/python benchmarks/int8_matmul.py --kernels avx2,avxvnni --rows 1,2,4,8,16
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from luoxia.text import int8_matmul

LAYER_SHAPES = [(960, 576), (576, 576), (3072, 576), (576, 1536)]  # (out, in) of one layer's products
HEAD = (49152, 576)
ROWS = "1,4,16,32,64"


def step_weights() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    shapes = LAYER_SHAPES * 30 + [HEAD]
    return [torch.randint(-128, 128, shape, dtype=torch.int8, generator=generator) for shape in shapes]


def alternating_ms(theirs, ours, repeats: int, calls: int = 1) -> tuple[float, float]:
    """Median ms a call of each, their runs alternating so that background load hits both alike."""
    theirs(), ours()
    times = []
    for _ in range(repeats):
        pair = []
        for fn in (theirs, ours):
            start = time.perf_counter()
            fn()
            pair.append((time.perf_counter() - start) / calls * 1e3)
        times.append(pair)
    return statistics.median(t for t, _ in times), statistics.median(o for _, o in times)


def time_rows(kernel, rows: int, weights: list[torch.Tensor], repeats: int) -> tuple[tuple[float, float], dict]:
    """(ms a step through torch._int_mm, through `kernel`), {shape: (µs a product theirs, ours)}."""
    generator = torch.Generator().manual_seed(rows)
    inputs = {width: torch.randint(-128, 128, (rows, width), dtype=torch.int8, generator=generator)
              for width in (576, 1536)}
    for w in (weights[0], weights[3], weights[-1]):
        q = inputs[w.shape[1]]
        assert torch.equal(kernel(q, w), torch._int_mm(q, w.t())), "the kernel's sums differ from _int_mm's"

    def products(use, some):
        def run():
            for w in some:
                use(inputs[w.shape[1]], w)
        return run

    def int_mm(q, w):
        return torch._int_mm(q, w.t())

    step = alternating_ms(products(int_mm, weights), products(kernel, weights), repeats)
    per_shape = {}
    for shape in [*LAYER_SHAPES, HEAD]:
        same = [w for w in weights if tuple(w.shape) == shape] * (10 if shape == HEAD else 1)
        theirs, ours = alternating_ms(products(int_mm, same), products(kernel, same), repeats, calls=len(same))
        per_shape[shape] = (theirs * 1e3, ours * 1e3)
    return step, per_shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rows", default=ROWS, help=f"comma-separated row counts (default {ROWS})")
    parser.add_argument("--kernels", default="",
                        help="comma-separated parts of op names to time, e.g. avx2,vnni (default: all that load)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wanted = [k for k in args.kernels.split(",") if k]
    kernels = [k for k in int8_matmul.KERNELS if not wanted or any(w in int8_matmul.OPS[k] for w in wanted)]
    available = {kernel.what: getattr(torch.ops.luoxia, int8_matmul.OPS[kernel]) for kernel in kernels if kernel.load()}
    if not available:
        reasons = "; ".join(f"{kernel.what}: {kernel.failure()}" for kernel in kernels)
        raise SystemExit(f"no kernel applies here: {reasons}")
    weights = step_weights()
    shapes = [*LAYER_SHAPES, HEAD]
    for name, op in available.items():
        print(f"\n{name}: ms a step (121 products); µs per product of each shape (out × in): torch._int_mm / ours")
        print(f"{'rows':>4} | {'step':>17} {'ratio':>6} | " + " ".join(f"{f'{o}x{i}':>17}" for o, i in shapes))
        for rows in (int(r) for r in args.rows.split(",")):
            (theirs, ours), per_shape = time_rows(op, rows, weights, args.repeats)
            cells = " ".join(f"{f'{t:.1f} / {o:.1f}':>17}" for t, o in (per_shape[s] for s in shapes))
            print(f"{rows:>4} | {f'{theirs:.2f} / {ours:.2f}':>17} {theirs / ours:>5.2f}x | {cells}")


if __name__ == "__main__":
    main()
