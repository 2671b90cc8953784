"""Training throughput: one training step of luoxia's loop against transformers' LlamaForCausalLM.

Both sides get the same Llama-shaped config, the same random initial weights (ours copied into
transformers'), the same batches, AdamW with the same settings and gradient clipping at 1.0:

    forward → cross-entropy → backward → clip → AdamW step → zero grad

This is the per-step work of `luoxia.train.loop` (its model, loss and clipping; plain AdamW on
both sides so the optimizers match); the steps of the two engines alternate, so background load
hits both alike. Reports the median
tokens/s over --steps timed steps after --warmup steps, and the ratio.

    .venv/bin/python benchmarks/train_throughput.py [--dim 256 --layers 4 --batch 8 --seq 256]

Target on the CPU: ours >= 1.2x transformers. Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8192)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    from luoxia.text.formats.hf import hf_config, to_hf_state_dict
    from luoxia.text.model import Transformer, TransformerConfig

    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=args.vocab, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                               n_kv_heads=args.kv_heads, ffn_dim=int(8 / 3 * args.dim) // 64 * 64,
                               max_seq_len=args.seq, tie_embeddings=True)
    ours = Transformer(config)
    ours.init_weights()
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**hf_config(config)))
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours.state_dict(), config), strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    hf.tie_weights()
    ours.train()
    hf.train()

    def adamw(model):
        return torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)

    optimizers = {"luoxia": adamw(ours), "transformers": adamw(hf)}
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g)
               for _ in range(args.warmup + args.steps)]

    def step(name: str, x: torch.Tensor) -> float:
        model, opt = (ours if name == "luoxia" else hf), optimizers[name]
        t0 = time.perf_counter()
        inputs, targets = x[:, :-1], x[:, 1:]
        logits = model(inputs) if name == "luoxia" else model(input_ids=inputs).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, loss.item()

    times: dict[str, list[float]] = {"luoxia": [], "transformers": []}
    losses: dict[str, list[float]] = {"luoxia": [], "transformers": []}
    for i, x in enumerate(batches):
        for name in times:
            dt, loss = step(name, x)
            losses[name].append(loss)
            if i >= args.warmup:
                times[name].append(dt)
    tokens = args.batch * args.seq
    rows = {name: {"tokens_per_s": tokens / statistics.median(t), "step_s_median": statistics.median(t),
                   "step_s_runs": t, "losses": losses[name]} for name, t in times.items()}
    ratio = rows["luoxia"]["tokens_per_s"] / rows["transformers"]["tokens_per_s"]
    params = sum(p.numel() for p in ours.parameters())
    print(f"\n## Training step, CPU: {params / 1e6:.1f}M-parameter Llama (dim {args.dim}, {args.layers} layers), "
          f"batch {args.batch} × {args.seq} tokens, AdamW, {args.threads} threads, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, median of {args.steps} steps\n")
    print("| engine | tokens/s | s/step |\n|---|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['tokens_per_s']:,.0f} | {r['step_s_median']:.3f} |")
    print(f"\nours/transformers: {ratio:.2f}x (target >= 1.2x: {'met' if ratio >= 1.2 else 'NOT met'})")
    print(f"first-step losses equal: {abs(losses['luoxia'][0] - losses['transformers'][0]) < 1e-4} "
          f"({losses['luoxia'][0]:.5f} vs {losses['transformers'][0]:.5f})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "parameters": params, "rows": rows, "ratio": ratio,
                                   "machine": platform.platform()}, indent=1))


if __name__ == "__main__":
    main()
