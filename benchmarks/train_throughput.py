"""Training throughput: one step of luoxia's training loop against transformers' LlamaForCausalLM.

All engines get the same Llama-shaped config, the same random initial weights (ours copied into
transformers'), the same batches, the same optimizer (`luoxia.train.step.make_optimizer`: AdamW,
fused kernel, no decay on norms; transformers' Trainer also picks fused AdamW on torch >= 2.8) and
gradient clipping at 1.0:

    forward → float32 cross-entropy → backward → clip → AdamW step → zero grad

    luoxia                   the loop's step as it runs by default: forward + loss under torch.compile
    transformers             LlamaForCausalLM as it runs by default (eager, SDPA attention)
    transformers + compile   the same model with forward + loss compiled exactly as ours (reference row)

Steps of the engines alternate, so background load hits all alike. Reports the median wall time
per step (tokens/s) and the median CPU time per step over --steps timed steps after --warmup steps
(the first steps compile), and the ratio to each transformers row.

    .venv/bin/python benchmarks/train_throughput.py [--dim 256 --layers 4 --batch 8 --seq 256] [--eager]

Target on the CPU: luoxia >= 1.2x transformers. Writes benchmarks/results/train_throughput.json.
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
    p.add_argument("--eager", action="store_true", help="no torch.compile anywhere (ours as with compile = false)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    import transformers

    from luoxia.text.formats.hf import hf_config, to_hf_state_dict
    from luoxia.text.model import Transformer
    from luoxia.text.model_config import TransformerConfig
    from luoxia.train.step import compiled, lm_loss, make_optimizer

    torch.manual_seed(0)
    config = TransformerConfig(vocab_size=args.vocab, dim=args.dim, n_layers=args.layers, n_heads=args.heads,
                               n_kv_heads=args.kv_heads, ffn_dim=int(8 / 3 * args.dim) // 64 * 64,
                               max_seq_len=args.seq, tie_embeddings=True)
    ours = Transformer(config)
    ours.init_weights()

    class HFLogits(torch.nn.Module):
        """LlamaForCausalLM called as ours is: token ids in, logits out (so `lm_loss` serves both)."""

        def __init__(self):
            super().__init__()
            self.hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**hf_config(config)))
            missing, unexpected = self.hf.load_state_dict(to_hf_state_dict(ours.state_dict(), config), strict=False)
            assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
            self.hf.tie_weights()

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.hf(input_ids=tokens).logits

    quiet = lambda line: print(line, flush=True)  # noqa: E731
    engines = {"luoxia": (ours.train(), lm_loss if args.eager else compiled(lm_loss, quiet)),
               "transformers": (HFLogits().train(), lm_loss)}
    if not args.eager:
        engines["transformers + compile"] = (HFLogits().train(), compiled(lm_loss, quiet))
    optimizers = {name: make_optimizer(m, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1, device=torch.device("cpu"))
                  for name, (m, _) in engines.items()}
    g = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g)
               for _ in range(args.warmup + args.steps)]

    def step(name: str, x: torch.Tensor) -> tuple[float, float, float]:
        (model, loss_fn), opt = engines[name], optimizers[name]
        t0, c0 = time.perf_counter(), time.process_time()
        loss = loss_fn(model, x)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, time.process_time() - c0, loss.item()

    wall: dict[str, list[float]] = {name: [] for name in engines}
    cpu: dict[str, list[float]] = {name: [] for name in engines}
    losses: dict[str, list[float]] = {name: [] for name in engines}
    load_before = os.getloadavg()[0]
    for i, x in enumerate(batches):
        for name in engines:
            dt, dc, loss = step(name, x)
            losses[name].append(loss)
            if i >= args.warmup:
                wall[name].append(dt)
                cpu[name].append(dc)
    load_after = os.getloadavg()[0]
    tokens = args.batch * args.seq
    rows = {name: {"tokens_per_s": tokens / statistics.median(w), "step_s_median": statistics.median(w),
                   "cpu_s_median": statistics.median(cpu[name]), "step_s_runs": w, "losses": losses[name]}
            for name, w in wall.items()}
    ratios = {name: rows["luoxia"]["tokens_per_s"] / r["tokens_per_s"] for name, r in rows.items() if name != "luoxia"}
    params = sum(p.numel() for p in ours.parameters())
    print(f"\n## Training step, CPU: {params / 1e6:.1f}M-parameter Llama (dim {args.dim}, {args.layers} layers, vocab "
          f"{args.vocab}), batch {args.batch} × {args.seq} tokens, fused AdamW + clip 1.0 on every engine, "
          f"{args.threads} threads, {'no torch.compile' if args.eager else 'ours compiled (the loop default)'}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}, median of {args.steps} steps; "
          f"load average {load_before:.1f} → {load_after:.1f} on {os.cpu_count()} cores\n")
    print("| engine | tokens/s | s/step (wall) | CPU s/step | luoxia tokens/s ÷ this |\n|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        vs = f"{ratios[name]:.2f}x" if name in ratios else ""
        print(f"| {name} | {r['tokens_per_s']:,.0f} | {r['step_s_median']:.3f} | {r['cpu_s_median']:.3f} | {vs} |")
    ratio = ratios["transformers"]
    print(f"\nluoxia/transformers: {ratio:.2f}x (target >= 1.2x: {'met' if ratio >= 1.2 else 'NOT met'})")
    first = [v[0] for v in losses.values()]
    print(f"first-step losses: {', '.join(f'{x:.5f}' for x in first)} "
          f"(equal to 1e-4: {max(first) - min(first) < 1e-4})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"args": vars(args), "parameters": params, "rows": rows, "ratios": ratios,
                                   "load_average": [load_before, load_after], "machine": platform.platform()},
                                  indent=1))


if __name__ == "__main__":
    main()
