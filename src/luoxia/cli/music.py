"""`luoxia music`: compose, continue or re-harmonise chorale-style music; transpose and re-time a piece.

    luoxia music --bars 8 --key "D minor" --temperature 0.9 --seed 0 -n 3 -o out.mid
    luoxia music --prompt-midi intro.mid --bars 4 --top-p 0.95 -o more.mid      # continue the opening
    luoxia music --melody tune.mid -o chorale.mid                              # keep the soprano, add ATB
    luoxia music --piece song.mid --transpose -2 --tempo 72 -o slower.mid      # no model: transform only

Each output is FILE.mid + FILE.wav + FILE.png (piano roll), all through `Artifact.save`, so each
carries the AI-generated labels (`luoxia inspect FILE.mid`). With -n > 1: FILE_000.mid, FILE_001.mid, ...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from luoxia.cli import THREADS_HELP, use_threads


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("music", help="compose, continue or re-harmonise music (MIDI + WAV + piano roll)",
                            description="Generate chorale-style music with a music-token model (default: the "
                                        "embedded chorale model) and save MIDI, WAV and a piano roll with "
                                        "AI-generated labels.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--prompt-midi", type=Path, metavar="FILE", help="continue this opening (MIDI or MusicXML)")
    src.add_argument("--melody", type=Path, metavar="FILE",
                     help="re-harmonise: keep this file's top voice as the soprano, generate alto, tenor and bass")
    src.add_argument("--piece", type=Path, metavar="FILE",
                     help="no generation: transpose (--transpose) and re-time (--tempo) this piece")
    p.add_argument("--model", default="chorale", metavar="NAME|PATH",
                   help="chorale (default, embedded), a run folder of `luoxia train music` or a registered name")
    p.add_argument("--bars", type=int, default=8, help="bars to compose, or to add after --prompt-midi (default 8)")
    p.add_argument("--key", help='key to compose in, e.g. "D minor", "Bb major" (a prompt or melody is moved '
                                 "there); default: the model's choice, or the input's key")
    p.add_argument("--time-signature", default="4/4", metavar="N/D", help="metre when composing (default 4/4)")
    p.add_argument("--tempo", type=float, help="quarter notes per minute (default: the input's, else 90)")
    p.add_argument("--transpose", type=int, default=0, metavar="SEMITONES", help="transpose the output")
    p.add_argument("--temperature", type=float, default=0.9, help="sampling temperature (default 0.9; 0 greedy)")
    p.add_argument("--top-k", type=int, help="sample from the k most likely tokens")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0: off)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the first piece; piece i uses seed + i")
    p.add_argument("-n", "--num-pieces", type=int, default=1, metavar="N", help="variations (default 1)")
    p.add_argument("--audio", choices=["auto", "fluidsynth", "numpy"], default="auto",
                   help="WAV renderer (auto: FluidSynth when installed, else the NumPy synthesiser)")
    p.add_argument("-o", "--output", type=Path, default=Path("music.mid"), metavar="FILE.mid",
                   help="MIDI file to write; .wav and .png are written beside it (default music.mid)")
    p.add_argument("--json", action="store_true", help="print the files and provenance as JSON")
    p.add_argument("--threads", type=int, metavar="T", help=THREADS_HELP)
    p.set_defaults(run=music)


def _time_signature(text: str) -> tuple[int, int]:
    from luoxia.core.errors import InvalidParameterError
    from luoxia.music.tokens import TIME_SIGNATURES

    try:
        n, d = (int(x) for x in text.split("/"))
    except ValueError:
        n, d = 0, 0
    if (n, d) not in TIME_SIGNATURES:
        raise InvalidParameterError(f"time signature {text!r} is not supported; use one of "
                                    f"{', '.join(f'{a}/{b}' for a, b in TIME_SIGNATURES)}")
    return n, d


def music(args: argparse.Namespace) -> int:
    from luoxia.core.artifact import TEXT_NOTICE
    from luoxia.core.errors import InvalidParameterError
    from luoxia.core.provenance import Provenance
    from luoxia.music.corpus import read_score
    from luoxia.music.keys import estimate_key, parse_key
    from luoxia.music.pipeline import MusicModel, SamplingParams, save_piece

    # Check everything the user gave before loading a model.
    params = SamplingParams(args.temperature, args.top_k, args.top_p).validate()
    key = parse_key(args.key) if args.key else None
    time_signature = _time_signature(args.time_signature)
    if not 1 <= args.num_pieces <= 100:
        raise InvalidParameterError(f"-n must be 1..100, got {args.num_pieces}")
    if args.tempo is not None and not 10 <= args.tempo <= 400:
        raise InvalidParameterError(f"--tempo must be 10..400, got {args.tempo}")
    if not -24 <= args.transpose <= 24:
        raise InvalidParameterError(f"--transpose must be -24..24 semitones, got {args.transpose}")
    if args.output.suffix.lower() not in (".mid", ".midi"):
        raise InvalidParameterError(f"--output must end in .mid, got {args.output}")
    use_threads(args.threads)
    given = args.prompt_midi or args.melody or args.piece
    source = read_score(given) if given else None

    t0 = time.perf_counter()
    if args.piece is not None:
        model_name, model_source, sha = "none (transform)", "", ""
        pieces = [source]
        mode = "transform"
    else:
        model = MusicModel.load(args.model)
        model_name, model_source, sha = model.name, model.source, model.sha256
        mode = "continue" if args.prompt_midi else "harmonise" if args.melody else "compose"
        pieces = [model.generate(prompt=source if args.prompt_midi else None,
                                 melody=source if args.melody else None, bars=args.bars, key=key,
                                 time_signature=time_signature, tempo=args.tempo, params=params, seed=args.seed + i)
                  for i in range(args.num_pieces)]
    seconds = time.perf_counter() - t0
    files, provs, written = [], [], []
    for i, piece in enumerate(pieces):
        if mode == "transform" and key is not None:
            from luoxia.music.keys import shift_to

            piece = piece.transpose(shift_to(estimate_key(piece), key))
        piece = piece.transpose(args.transpose) if args.transpose else piece
        piece = piece.retime(args.tempo) if args.tempo else piece
        out = args.output if len(pieces) == 1 else args.output.with_name(f"{args.output.stem}_{i:03d}.mid")
        prov = Provenance(
            model=model_name, model_source=model_source, model_sha256=sha, seed=args.seed + i,
            prompt=str(given or ""),
            params={"kind": "music", "mode": mode, "bars": args.bars, "key": args.key,
                    "temperature": params.temperature, "top_k": params.top_k, "top_p": params.top_p,
                    "tempo": piece.tempo, "transpose": args.transpose},
            stats={"seconds": round(seconds / len(pieces), 3)},
        )
        files.append([str(p) for p in save_piece(piece, out, prov, audio=args.audio)])
        provs.append(prov)
        written.append(piece)
    if args.json:
        print(json.dumps({"files": files, "provenance": [p.to_dict() for p in provs]}, ensure_ascii=False))
    else:
        for group in files:
            print(" ".join(group))
    for piece in written[:1]:
        print(f"{TEXT_NOTICE} {len(pieces)} piece(s), {mode} | {model_name} | {piece.n_bars} bars, "
              f"{len(piece.notes)} notes, {estimate_key(piece)} | seed {args.seed} | {seconds:.1f} s",
              file=sys.stderr)
    return 0


def register_eval(sub: argparse._SubParsersAction) -> None:
    """`luoxia eval music ...` (called by luoxia.cli.eval)."""
    e = sub.add_parser("music", help="music metrics: generated pieces beside held-out Bach chorales",
                       description="Compose -n pieces and harmonise the sopranos of -n held-out chorales with the "
                                   "model; report pitch-class entropy, scale consistency, pitch range, polyphony, "
                                   "empty-beat rate, groove consistency, voice range and the held-out loss "
                                   "(report.json, report.md).")
    e.add_argument("--model", default="chorale", metavar="NAME|PATH", help="the music model (default chorale)")
    e.add_argument("--corpus", default="bach", help="bach (default) or a folder of MIDI/MusicXML")
    e.add_argument("--val-every", type=int, default=10, help="the held-out split: every n-th piece (default 10, "
                                                            "as in training)")
    e.add_argument("-n", "--num-pieces", type=int, default=20, metavar="N", help="pieces per set (default 20)")
    e.add_argument("--bars", type=int, default=16, help="bars per composed piece (default 16)")
    e.add_argument("--temperature", type=float, default=0.9, help="sampling temperature (default 0.9)")
    e.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1.0)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="report folder")
    e.set_defaults(run=eval_music)


def eval_music(args: argparse.Namespace) -> int:
    from luoxia.core import atomic
    from luoxia.core.errors import InvalidParameterError
    from luoxia.eval.music import evaluate_model, markdown
    from luoxia.music.corpus import is_held_out, read_corpus
    from luoxia.music.pipeline import MusicModel, SamplingParams

    params = SamplingParams(args.temperature, None, args.top_p).validate()
    if args.num_pieces < 1 or args.val_every < 2:
        raise InvalidParameterError("need -n >= 1 and --val-every >= 2")
    model = MusicModel.load(args.model)
    reference = [p for i, (_, p) in enumerate(read_corpus(args.corpus)) if is_held_out(i, args.val_every)]
    if not reference:
        raise InvalidParameterError(f"{args.corpus} has no held-out pieces at --val-every {args.val_every}")
    result = evaluate_model(model, reference, n=args.num_pieces, bars=args.bars, seed=args.seed, params=params,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    result["command"] = "luoxia eval music " + " ".join(sys.argv[3:]) if len(sys.argv) > 3 else "luoxia eval music"
    result["model"] = {"name": model.name, "source": model.source, "sha256": model.sha256}
    args.output.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.output / "report.json", json.dumps(result, indent=2))
    atomic.write_text(args.output / "report.md", markdown(result))
    print(markdown(result))
    return 0
