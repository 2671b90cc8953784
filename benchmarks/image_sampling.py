"""Image sampling speed: our UNet + DDIM loop against diffusers' UNet2DModel + DDIMPipeline, same weights.

Both networks are built from one luoxia `UNetConfig` (unconditional, 32×32×3, channels 64/128/128,
one residual block per level, attention at 16 and 8 pixels, FiLM time conditioning): ours directly,
diffusers' as `UNet2DModel(**diffusers_config(cfg))` holding our weights converted by
`luoxia.image.diffusers_format` (same parameter count; their outputs agree, checked here). Each
draws --images images (default 64) with --steps DDIM steps (default 50, η = 0, trailing spacing,
cosine betas) in one batch on the CPU with the same number of torch threads:

    ours       luoxia.image.diffusion.sample(unet, DDIMScheduler, ...), the UNet in channels-last layout
               as `ImageModel.load` puts it (NHWC convolutions; same math, float32)
    diffusers  DDIMPipeline(unet, DDIMScheduler)(batch_size=64, num_inference_steps=50, output_type="np"),
               as diffusers loads it; and, for reference, the same with the UNet moved to channels-last
               (`unet.to(memory_format=torch.channels_last)`, which diffusers leaves to the user)

Each engine runs in its own child process (so its peak memory is its own), --repeats times
alternating (background load hits both alike); we report the median images/s and the child's
peak RSS (VmHWM) and its growth over the RSS before the first sample.

    .venv/bin/python benchmarks/image_sampling.py [--images 64] [--steps 50] [--repeats 3] [--threads 1]

Prints the machine, a Markdown table and the ratio against the target (ours >= 1.0x diffusers);
writes benchmarks/results/image_sampling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "image_sampling.json"
MARK = "@@luoxia-bench "
TARGET = 1.0
CONFIG = dict(image_size=32, channels=64, channel_mults=(1, 2, 2), layers=1, attn_resolutions=(16, 8),
              head_dim=32, groups=16, cond="none")


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(engine: str, images: int, steps: int, threads: int, check: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    from luoxia.image.diffusers_format import diffusers_config, to_diffusers
    from luoxia.image.diffusion import Condition, sample
    from luoxia.image.schedulers import DDIMScheduler, ScheduleConfig
    from luoxia.image.unet import UNet, UNetConfig

    cfg = UNetConfig(**CONFIG)
    torch.manual_seed(0)
    ours = UNet(cfg).eval()
    with torch.no_grad():
        ours.conv_out.weight.normal_(0, 0.02)
    schedule = dict(beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing")
    params = sum(p.numel() for p in ours.parameters())
    if engine.startswith("diffusers"):
        import diffusers

        diffusers.utils.logging.disable_progress_bar()
        unet = diffusers.UNet2DModel(**diffusers_config(cfg)).eval()
        unet.load_state_dict(to_diffusers(ours.state_dict(), cfg))
        if engine == "diffusers-channels-last":
            unet = unet.to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in unet.parameters())
        pipe = diffusers.DDIMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler(**schedule))
        pipe.set_progress_bar_config(disable=True)
        del ours

        def run(seed: int):
            with torch.no_grad():
                return torch.from_numpy(pipe(batch_size=images, num_inference_steps=steps, output_type="np",
                                             generator=torch.Generator().manual_seed(seed)).images)
    else:
        scheduler = DDIMScheduler(ScheduleConfig(**schedule))
        ours = ours.to(memory_format=torch.channels_last)
        ours.channels_last = True

        def run(seed: int):
            x = sample(ours, scheduler, (images, 3, 32, 32), Condition(), steps=steps,
                       generator=torch.Generator().manual_seed(seed))
            return ((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1)  # as DDIMPipeline's output_type="np"
    rss_before = _rss_mb("VmRSS")
    t0 = time.perf_counter()
    out = run(0)
    seconds = time.perf_counter() - t0
    result = {"engine": engine, "seconds": seconds, "images_per_s": images / seconds, "params": params,
              "peak_rss_mb": _rss_mb("VmHWM"), "rss_before_mb": rss_before}
    if check:
        result["checksum"] = out[:4].double().sum().item()
        result["first"] = out[:2].flatten().tolist()[:4096]
    return result


def child(engine: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", engine, "--images", str(args.images), "--steps", str(args.steps),
           "--threads", str(args.threads)] + (["--check"] if args.check else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"{engine} worker failed:\n{done.stderr[-2000:]}")


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads in each engine (default 1)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--check", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(MARK + json.dumps(worker(args.worker, args.images, args.steps, args.threads, args.check)), flush=True)
        return

    import torch

    # the two engines draw the same images from the same weights and starting noise
    check = argparse.Namespace(**{**vars(args), "images": 2, "steps": 5, "check": True})
    a, b = child("luoxia", check), child("diffusers", check)
    max_diff = max(abs(x - y) for x, y in zip(a["first"], b["first"]))
    runs: dict[str, list[dict]] = {"luoxia": [], "diffusers": [], "diffusers-channels-last": []}
    for _ in range(args.repeats):
        for engine in runs:
            runs[engine].append(child(engine, args))
    rows = {}
    for engine, rs in runs.items():
        rows[engine] = {"images_per_s": statistics.median(r["images_per_s"] for r in rs),
                        "seconds": statistics.median(r["seconds"] for r in rs),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
                        "rss_growth_mb": max(r["peak_rss_mb"] - r["rss_before_mb"] for r in rs),
                        "params": rs[0]["params"], "runs_images_per_s": [round(r["images_per_s"], 3) for r in rs]}
    ratio = rows["luoxia"]["images_per_s"] / rows["diffusers"]["images_per_s"]
    ratio_cl = rows["luoxia"]["images_per_s"] / rows["diffusers-channels-last"]["images_per_s"]
    import diffusers

    result = {"machine": machine(), "torch": torch.__version__, "diffusers": diffusers.__version__,
              "threads": args.threads, "images": args.images, "steps": args.steps, "repeats": args.repeats,
              "config": CONFIG, "rows": rows, "ratio": ratio, "ratio_vs_channels_last": ratio_cl,
              "target": TARGET, "met": ratio >= TARGET,
              "max_abs_pixel_difference_5_steps": max_diff}
    print(f"machine: {result['machine']}; torch {torch.__version__}, diffusers {diffusers.__version__}, "
          f"{args.threads} thread(s)")
    print(f"DDIM, {args.images} images 32×32, {args.steps} steps, one batch, median of {args.repeats}\n")
    print("| engine | params | images/s | s per batch | peak RSS MB | RSS growth MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for engine, r in rows.items():
        print(f"| {engine} | {r['params'] / 1e6:.2f}M | {r['images_per_s']:.2f} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['rss_growth_mb']:.0f} |")
    print(f"\nratio luoxia / diffusers: {ratio:.2f}x (target >= {TARGET}x: {'met' if result['met'] else 'NOT met'}); "
          f"same images: max |Δpixel| {max_diff:.1e} over 2 images × 5 steps")
    print(f"against diffusers with its UNet moved to channels-last by hand: {ratio_cl:.2f}x")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
