"""`luoxia video` (text-to-video, image-to-video, frame and latent interpolation), `luoxia video-edit`,
`luoxia train video` and `luoxia eval video`.

    luoxia video "a red circle moves from left to right" --frames 16 --fps 8 --seed 0 -o out.mp4
    luoxia video "a blue square moves from top to bottom" --first-frame start.png -o anim.gif
    luoxia video --between a.png b.png --frames 8 -o tween.webp          # frame interpolation
    luoxia video --morph "a red circle on the left" "a red circle on the right" -o morph.mp4
    luoxia video-edit trim in.mp4 --start 0.5 --end 1.5 -o short.mp4
    luoxia video-edit concat a.mp4 b.mp4 --crossfade 0.5 -o joined.mp4
    luoxia train video --steps 2500 --out runs/video
    luoxia eval video -n 96 -o video-report/

Every file is written through `Artifact.save` (MP4, GIF or WebP by the extension), so it carries the
visible label on its first 2 s and the AIGC metadata (`luoxia inspect out.mp4`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from luoxia.cli import THREADS_HELP, use_threads

DEFAULT_SCALE_TO = 128  # generated clips are enlarged to at least this many pixels (whole-pixel repeats)


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("video", help="generate a short clip from a prompt (also from a first frame)",
                            description="Generate a clip with a video model (default: the embedded moving-shapes "
                                        "model, 32×32) and save it, labelled, as MP4, GIF or WebP.")
    p.add_argument("prompt", nargs="?", help='e.g. "a red circle moves from left to right"')
    p.add_argument("--model", default="moving-shapes", metavar="NAME|PATH",
                   help="moving-shapes (default) or a run folder of `luoxia train video`")
    p.add_argument("--frames", type=int, help="frames (default: the model's, 8)")
    p.add_argument("--fps", type=float, help="frames per second (default: the model's, 8)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (default 3)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM noise (0 = deterministic)")
    p.add_argument("--seed", type=int, help="random seed (chosen and recorded when not given)")
    p.add_argument("--first-frame", type=Path, metavar="IMAGE", help="image-to-video: animate this image")
    p.add_argument("--between", type=Path, nargs=2, metavar=("A", "B"),
                   help="frame interpolation: a clip from image A to image B (the video model fills the middle)")
    p.add_argument("--blend", action="store_true",
                   help="with --between: a plain cross-dissolve at the images' own size (no model)")
    p.add_argument("--morph", nargs=2, metavar=("PROMPT_A", "PROMPT_B"),
                   help="latent interpolation with an image model between two prompts")
    p.add_argument("--morph-images", type=Path, nargs=2, metavar=("A", "B"),
                   help="latent interpolation with an image model between two images")
    p.add_argument("--image-model", default="shapes", metavar="NAME|PATH",
                   help="the image model of --morph / --morph-images (default shapes)")
    p.add_argument("--scale", type=int, metavar="K", help=f"enlarge by K whole pixels (default: to >= "
                                                           f"{DEFAULT_SCALE_TO} px)")
    p.add_argument("-o", "--output", type=Path, default=Path("video.mp4"), metavar="FILE",
                   help="MP4, GIF or WebP to write (default video.mp4)")
    p.add_argument("--json", action="store_true", help="print the provenance as JSON")
    p.add_argument("--threads", type=int, metavar="T", help=THREADS_HELP)
    p.set_defaults(run=video)
    register_edit(commands)


def _check_output(path: Path) -> None:
    from luoxia.safety.labels import format_for

    format_for("video", path)  # a bad extension fails before anything is generated


def video(args: argparse.Namespace) -> int:
    from luoxia.core.errors import InvalidParameterError
    from luoxia.image.diffusion import check_sampling_args
    from luoxia.video.io import check_fps
    from luoxia.video.pipeline import VideoModel, VideoResult, check_frames

    modes = [m for m in ("between", "morph", "morph_images") if getattr(args, m)]
    if len(modes) > 1 or modes and args.first_frame is not None:
        raise InvalidParameterError("choose one of --between, --morph, --morph-images and --first-frame")
    if args.blend and not args.between:
        raise InvalidParameterError("--blend applies to --between A B")
    if not modes and not args.prompt:
        raise InvalidParameterError('give a prompt, e.g. luoxia video "a red circle moves from left to right"')
    check_sampling_args(args.guidance, 1.0, args.steps)
    if args.frames is not None:
        check_frames(args.frames)
    if args.fps is not None:
        check_fps(args.fps)
    if args.scale is not None and not 1 <= args.scale <= 32:
        raise InvalidParameterError(f"--scale must be in [1, 32], got {args.scale}")
    _check_output(args.output)
    use_threads(args.threads)
    if args.morph or args.morph_images:
        result = _morph(args)
    elif args.between and args.blend:
        result = _blend(args)
    else:
        model = VideoModel.load(args.model)
        if args.between:
            result = model.between(*args.between, frames=args.frames, fps=args.fps, prompt=args.prompt or "",
                                   steps=args.steps, seed=args.seed or 0)
        else:
            result = model.generate(args.prompt, frames=args.frames, fps=args.fps, steps=args.steps,
                                    guidance=args.guidance, seed=args.seed, eta=args.eta,
                                    first_frame=args.first_frame)
    assert isinstance(result, VideoResult)
    side = result.frames.shape[1]
    scale = args.scale or max(1, DEFAULT_SCALE_TO // side)
    path = result.artifact(scale).save(args.output)
    _report(path, result, scale, args.json)
    return 0


def _report(path: Path, result, scale: int, as_json: bool) -> None:
    from luoxia.core.artifact import TEXT_NOTICE

    p = result.provenance
    if as_json:
        print(json.dumps({"file": str(path), "provenance": p.to_dict()}, ensure_ascii=False))
    else:
        print(path)
    t, h, w, _ = result.frames.shape
    what = ", ".join(f"{k} {v}" for k, v in p.params.items() if k not in ("frames", "fps"))
    print(f"{TEXT_NOTICE} {t} frames {w}×{h} ×{scale} at {result.fps:g} fps | {p.model} | {what} | seed {p.seed} "
          f"| {p.stats.get('seconds', 0):.1f} s", file=sys.stderr)


def _morph(args: argparse.Namespace):
    import time

    from luoxia.core.provenance import Provenance
    from luoxia.image.pipeline import ImageModel
    from luoxia.video.interpolate import morph_images, morph_prompts
    from luoxia.video.io import check_fps
    from luoxia.video.pipeline import VideoResult

    model = ImageModel.load(args.image_model)
    frames, fps, seed = args.frames or 16, check_fps(args.fps or 8.0), args.seed or 0
    t0 = time.perf_counter()
    if args.morph:
        clip = morph_prompts(model, *args.morph, frames=frames, steps=args.steps, guidance=args.guidance, seed=seed)
        prompt, mode = " → ".join(args.morph), "morph-prompts"
    else:
        clip = morph_images(model, *args.morph_images, frames=frames, prompt=args.prompt or "", steps=args.steps,
                            guidance=args.guidance, seed=seed)
        prompt, mode = args.prompt or "", "morph-images"
    prov = Provenance(model=model.name, model_source=str(model.source), model_sha256=model.sha256, seed=seed,
                      prompt=prompt, params={"mode": mode, "frames": frames, "fps": fps, "steps": args.steps,
                                             "guidance": args.guidance if args.morph or args.prompt else 1.0},
                      stats={"seconds": round(time.perf_counter() - t0, 3)})
    return VideoResult(clip, fps, prov)


def _blend(args: argparse.Namespace):
    import numpy as np

    from luoxia.core.errors import InvalidParameterError
    from luoxia.core.provenance import Provenance
    from luoxia.image.datasets import open_image
    from luoxia.video.interpolate import blend_frames
    from luoxia.video.io import check_fps, check_memory
    from luoxia.video.pipeline import VideoResult

    a, b = (np.asarray(open_image(p, "RGB")) for p in args.between)
    if a.shape != b.shape:
        raise InvalidParameterError(f"--blend needs two images of one size; got {a.shape[1]}×{a.shape[0]} and "
                                    f"{b.shape[1]}×{b.shape[0]}")
    frames = args.frames or 8
    check_memory(frames, a.shape[0], a.shape[1], "the blended clip")
    prov = Provenance(model="luoxia blend", params={"mode": "blend", "frames": frames})
    return VideoResult(blend_frames(a, b, frames), check_fps(args.fps or 8.0), prov)


# --- video-edit ------------------------------------------------------------------------------------------


def register_edit(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("video-edit", help="trim, join, resize, crop, speed up, add effects or text to videos",
                            description="Edit video files; the result is written, labelled, as MP4, GIF or WebP.")
    sub = p.add_subparsers(dest="edit_command", metavar="OP", title="operations", required=True)

    def op(name: str, help: str, inputs: str = "1") -> argparse.ArgumentParser:
        e = sub.add_parser(name, help=help, description=help)
        if inputs == "+":
            e.add_argument("inputs", type=Path, nargs="+", metavar="VIDEO", help="videos, in order")
        else:
            e.add_argument("input", type=Path, metavar="VIDEO", help="the video to edit")
        e.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="MP4, GIF or WebP to write")
        e.add_argument("--max-frames", type=int, metavar="N", help="read at most the first N frames of each input")
        e.set_defaults(run=edit)
        return e

    e = op("trim", "keep the frames between --start and --end seconds")
    e.add_argument("--start", type=float, default=0.0, help="seconds (default 0)")
    e.add_argument("--end", type=float, help="seconds (default: the end)")
    e = op("concat", "join videos one after another, with an optional cross-fade", "+")
    e.add_argument("--crossfade", type=float, default=0.0, help="seconds of cross-fade at each join (default 0)")
    e = op("resize", "scale every frame to --width × --height")
    e.add_argument("--width", type=int, required=True)
    e.add_argument("--height", type=int, required=True)
    e = op("crop", "keep the --width × --height rectangle at (--x, --y)")
    for k in ("x", "y"):
        e.add_argument(f"--{k}", type=int, default=0)
    e.add_argument("--width", type=int, required=True)
    e.add_argument("--height", type=int, required=True)
    e = op("speed", "play --factor times as fast (0.5 = half speed)")
    e.add_argument("--factor", type=float, required=True)
    e = op("effect", "a colour or style effect on every frame")
    from luoxia.video.edit import EFFECTS, POSITIONS

    e.add_argument("--name", choices=EFFECTS, required=True)
    e.add_argument("--strength", type=float, default=1.0, help="blend with the original, 0..1 (default 1)")
    e = op("text", "draw a caption on the frames between --start and --end seconds")
    e.add_argument("--text", required=True)
    e.add_argument("--start", type=float, default=0.0)
    e.add_argument("--end", type=float, help="seconds (default: the end)")
    e.add_argument("--position", choices=POSITIONS, default="bottom")
    e = op("restyle", "image-to-image with an image model on every frame, then temporal smoothing")
    e.add_argument("--prompt", required=True, help='what each frame should become, e.g. "a blue square"')
    e.add_argument("--model", default="shapes", metavar="NAME|PATH", help="image model (default shapes)")
    e.add_argument("--strength", type=float, default=0.5, help="how far to re-noise each frame (default 0.5)")
    e.add_argument("--smoothing", type=float, default=0.5, help="temporal EMA weight of the previous frame")
    e.add_argument("--steps", type=int, default=25)
    e.add_argument("--seed", type=int, default=0)


def edit(args: argparse.Namespace) -> int:
    import hashlib

    from luoxia.core.artifact import Artifact, Video
    from luoxia.core.provenance import Provenance
    from luoxia.video import edit as ops
    from luoxia.video.io import check_clip, read_video

    _check_output(args.output)
    paths = args.inputs if args.edit_command == "concat" else [args.input]
    clips = [check_clip(*read_video(p, args.max_frames), what=str(p)) for p in paths]
    frames, fps = clips[0]
    name = args.edit_command
    params: dict = {"op": name}
    if name == "trim":
        frames = ops.trim(frames, fps, args.start, args.end)
        params.update(start=args.start, end=args.end)
    elif name == "concat":
        frames, fps = ops.concat(clips, args.crossfade)
        params.update(crossfade=args.crossfade, inputs=len(clips))
    elif name == "resize":
        frames = ops.resize(frames, args.width, args.height)
        params.update(width=args.width, height=args.height)
    elif name == "crop":
        frames = ops.crop(frames, args.x, args.y, args.width, args.height)
        params.update(x=args.x, y=args.y, width=args.width, height=args.height)
    elif name == "speed":
        frames = ops.speed(frames, args.factor)
        params.update(factor=args.factor)
    elif name == "effect":
        frames = ops.effect(frames, args.name, args.strength)
        params.update(effect=args.name, strength=args.strength)
    elif name == "text":
        frames = ops.overlay_text(frames, fps, args.text, args.start, args.end, args.position)
        params.update(text=args.text, start=args.start, end=args.end, position=args.position)
    elif name == "restyle":
        from luoxia.image.pipeline import ImageModel

        model = ImageModel.load(args.model)
        frames = ops.restyle(frames, model, args.prompt, strength=args.strength, smoothing=args.smoothing,
                             steps=args.steps, seed=args.seed)
        params.update(model=model.name, prompt=args.prompt, strength=args.strength, smoothing=args.smoothing,
                      steps=args.steps)
    sources = [{"file": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in paths]
    prov = Provenance(model=f"luoxia video-edit {name}", params={**params, "sources": sources},
                      seed=getattr(args, "seed", None), prompt=getattr(args, "prompt", "") or "")
    path = Artifact("video", Video(frames, fps), prov).save(args.output)
    print(path)
    t, h, w, _ = frames.shape
    print(f"{name}: {t} frames {w}×{h} at {fps:g} fps ({t / fps:.2f} s)", file=sys.stderr)
    return 0


# --- train and eval --------------------------------------------------------------------------------------


def register_train(sub: argparse._SubParsersAction) -> None:
    """`luoxia train video ...` (called by luoxia.cli.train)."""
    t = sub.add_parser("video", help="train the video diffusion model",
                       description="Train the temporal UNet on the moving-shapes world or a folder of videos "
                                   "(captions from NAME.txt, else the file name). Resumes from the newest "
                                   "checkpoint in --out. Unset flags keep luoxia.video.training.VideoTrainConfig's "
                                   "defaults.")
    t.add_argument("--data", metavar="moving-shapes|FOLDER", help="training data (default moving-shapes)")
    t.add_argument("--out", metavar="DIR", help="run folder (default runs/video)")
    t.add_argument("--frames", type=int, help="frames per clip (default 8)")
    t.add_argument("--size", type=int, help="frame side in pixels (default 32)")
    t.add_argument("--n", type=int, help="moving-shapes: clips to render (default 4000); folders: at most N files")
    t.add_argument("--motions", type=lambda s: tuple(x.strip() for x in s.split(",")), metavar="M,M",
                   help="moving-shapes motions (default all: right,left,down,up,grows,shrinks,turns,bounces)")
    t.add_argument("--init", metavar="IMAGE_MODEL", help="image model for the spatial weights (default shapes; "
                                                         "'none' trains from scratch)")
    t.add_argument("--preset", help="spatial network size without --init (default shapes)")
    t.add_argument("--steps", type=int, help="optimizer steps (default 3000)")
    t.add_argument("--batch-size", type=int, help="clips per step (default 8)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 2e-4)")
    t.add_argument("--new-lr-scale", type=float, help="lr multiplier of the temporal layers (default 5)")
    t.add_argument("--ema-decay", type=float, help="EMA decay (default 0.999)")
    t.add_argument("--p-uncond", type=float, help="caption dropout for guidance (default 0.1)")
    t.add_argument("--seed", type=int, help="seed (default 0)")
    t.add_argument("--sample-every", type=int, help="steps between preview strips (default 500)")
    t.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default 100)")
    t.add_argument("--threads", type=int, help="CPU threads for torch")
    t.add_argument("--no-resume", action="store_true", help="start over even if --out has checkpoints")
    t.add_argument("--export", type=Path, metavar="DIR",
                   help="do not train: write the newest checkpoint of --out as a model folder DIR")
    t.set_defaults(run=train_video)


def train_video(args: argparse.Namespace) -> int:
    import dataclasses

    from luoxia.core.errors import UserFileError
    from luoxia.train.resume import latest
    from luoxia.video.training import VideoTrainConfig, export_checkpoint, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(VideoTrainConfig)
              if getattr(args, f.name, None) is not None}
    if values.get("init") == "none":
        values["init"] = None
    if args.no_resume:
        values["resume"] = False
    cfg = VideoTrainConfig(**values)
    if args.export is not None:
        checkpoint = latest(Path(cfg.out))
        if checkpoint is None:
            raise UserFileError(f"{cfg.out} has no checkpoints to export; give the run folder with --out")
        print(export_checkpoint(checkpoint, args.export))
        return 0
    print(json.dumps(train(cfg)))
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    """`luoxia eval video ...` (called by luoxia.cli.eval)."""
    v = sub.add_parser("video", help="motion adherence, temporal consistency and FVD-style distance of a video model",
                       description="Sample a video model for moving-shapes captions and measure: motion adherence "
                                   "(a pixel tracker checks colour, shape and motion), consecutive-frame similarity, "
                                   "flicker against ground-truth clips, and an FVD-style distance with the project's "
                                   "own frame features (not comparable with published FVD).")
    v.add_argument("--model", default="moving-shapes", metavar="NAME|PATH", help="video model (default moving-shapes)")
    v.add_argument("-n", "--num-clips", type=int, default=96, help="clips (default 96)")
    v.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    v.add_argument("--guidance", type=float, default=3.0, help="guidance scale (default 3)")
    v.add_argument("--seed", type=int, default=0, help="seed of captions and samples (default 0)")
    v.add_argument("--threads", type=int, metavar="T", help="CPU threads for torch")
    v.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="report folder: results.json and a labelled GIF of the first clips")
    v.set_defaults(run=eval_video)


def eval_video(args: argparse.Namespace) -> int:
    import numpy as np

    from luoxia.core import atomic
    from luoxia.core.artifact import Artifact, Video
    from luoxia.core.provenance import Provenance
    from luoxia.eval.video import evaluate_model
    from luoxia.image.diffusion import check_sampling_args
    from luoxia.video.pipeline import VideoModel

    check_sampling_args(args.guidance, 1.0, args.steps)
    use_threads(args.threads)
    model = VideoModel.load(args.model)
    result = evaluate_model(model, args.num_clips, steps=args.steps, guidance=args.guidance, seed=args.seed)
    clips, captions = result.pop("clips"), result.pop("captions")
    args.output.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.output / "results.json", json.dumps(result, indent=1))
    show = clips[:8]  # (8, T, H, W, 3) → one strip per frame time: the clips side by side
    strip = np.concatenate(list(show), axis=2).repeat(2, 1).repeat(2, 2)
    prov = Provenance(model=model.name, params={"eval": True, "steps": args.steps, "guidance": args.guidance},
                      seed=args.seed, prompt=" | ".join(captions[:8]))
    Artifact("video", Video(strip, model.fps), prov).save(args.output / "samples.gif")
    a = result["adherence"]
    print(f"video model {model.name}: {result['n']} clips of {result['frames']} frames, {args.steps} steps, "
          f"guidance {args.guidance:g}, {result['seconds']:.0f} s")
    print(f"  motion adherence (all)   {a['all']:.1%}  (present {a['present']:.1%}, colour {a['colour']:.1%}, "
          f"shape {a['kind']:.1%}, motion {a['motion']:.1%}); ground truth {result['ground_truth_adherence']:.1%}")
    print("  by motion                " + ", ".join(f"{k} {v:.0%}" for k, v in result["adherence_by_motion"].items()))
    print(f"  consecutive similarity   {result['consistency']:.4f} (ground truth "
          f"{result['ground_truth_consistency']:.4f})")
    print(f"  flicker vs ground truth  {result['flicker_vs_ground_truth']:.2f}× (1 = as steady)")
    print(f"  FVD-style (own features) {result['fvd_style']:.2f} (not comparable with published FVD)")
    print(f"  {args.output / 'results.json'}")
    return 0
