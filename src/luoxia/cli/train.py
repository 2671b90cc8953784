"""`luoxia train text --config run.toml`: pretrain or fine-tune a text model (also under torchrun);
`luoxia train image ...` (in luoxia.cli.image): train a VAE, GAN or diffusion model."""

from __future__ import annotations

import argparse
import json
import os


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train a model", description="Train a model.")
    sub = p.add_subparsers(dest="train_command", metavar="MODALITY", title="modalities", required=True)
    t = sub.add_parser(
        "text", help="pretrain or fine-tune a text model",
        description="Train the text transformer as run.toml says (keys of luoxia.train.config.TrainConfig). "
                    "Resumes from the newest checkpoint in `out`. Data-parallel under "
                    "`torchrun --nproc_per_node=N -m luoxia.cli.main train text --config run.toml`.",
    )
    t.add_argument("--config", required=True, metavar="TOML", help="the run config")
    t.add_argument("--max-steps", type=int, metavar="N", help="override max_steps")
    t.add_argument("--no-resume", action="store_true", help="start over even if `out` has checkpoints")
    t.set_defaults(run=train_text)
    m = sub.add_parser(
        "music", help="train a music model on chorales or a folder of MIDI/MusicXML",
        description="Train the transformer on music tokens: run.toml has the keys of `train text` plus a "
                    "[corpus] table (source = \"bach\" or a folder, transpose = [-5, 6], val_every = 10). "
                    "The token shards are written to `data` first when it has none.",
    )
    m.add_argument("--config", required=True, metavar="TOML", help="the run config")
    m.add_argument("--max-steps", type=int, metavar="N", help="override max_steps")
    m.add_argument("--no-resume", action="store_true", help="start over even if `out` has checkpoints")
    m.set_defaults(run=train_music)
    from luoxia.cli.image import register_train
    from luoxia.cli.video import register_train as register_train_video

    register_train(sub)
    register_train_video(sub)


def train_text(args: argparse.Namespace) -> int:
    from luoxia.train.config import load_train_config
    from luoxia.train.loop import train

    cfg = load_train_config(args.config)
    if args.max_steps is not None:
        cfg.max_steps = args.max_steps
    if args.no_resume:
        cfg.resume = False
    summary = train(cfg)
    if os.environ.get("RANK", "0") == "0":  # one summary under torchrun (the process group is gone by now)
        print(json.dumps(summary))
    return 0


def train_music(args: argparse.Namespace) -> int:
    from pathlib import Path

    from luoxia.music.corpus import load_music_config, prepare
    from luoxia.train.loop import train

    cfg, corpus = load_music_config(args.config)
    if args.max_steps is not None:
        cfg.max_steps = args.max_steps
    if args.no_resume:
        cfg.resume = False
    if not (Path(cfg.data) / "manifest.json").is_file():
        manifest = prepare(corpus, cfg.data)
        print(f"prepared {cfg.data}: {manifest['docs']['train']} training and {manifest['docs']['val']} held-out "
              f"documents, {manifest['tokens']['train']:,} + {manifest['tokens']['val']:,} tokens", flush=True)
    print(json.dumps(train(cfg)))
    return 0
