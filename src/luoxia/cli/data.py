"""`luoxia data prepare`: raw files → cleaned, filtered, deduplicated corpus → tokenizer → token shards."""

from __future__ import annotations

import argparse
import sys


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("data", help="prepare training data", description="Prepare training data.")
    sub = p.add_subparsers(dest="data_command", metavar="COMMAND", title="commands", required=True)
    q = sub.add_parser(
        "prepare", help="clean, filter, dedup, train a tokenizer and write token shards",
        description="Read .txt/.md/.jsonl/.parquet/.html and fortune files (folders are walked), clean, filter, "
                    "deduplicate, train or reuse a tokenizer, and write token shards with a manifest and a report "
                    "(OUT/report.md). Flags override the same keys of --config.",
    )
    q.add_argument("inputs", nargs="*", metavar="INPUT", help="files or folders")
    q.add_argument("--out", "-o", metavar="DIR", help="output folder")
    q.add_argument("--config", metavar="TOML", help="a data config (keys of luoxia.data.prepare.DataConfig; "
                                                     "[filters] and [dedup] tables)")
    q.add_argument("--tokenizer", metavar="bpe|char|PATH", help="train a byte-level BPE (default) or a character "
                   "vocabulary, or reuse a tokenizer.json / model (for fine-tuning data)")
    q.add_argument("--vocab-size", type=int, metavar="N", help="tokenizer size (default 8000; char: 0 = all)")
    q.add_argument("--val", dest="val_inputs", action="append", metavar="INPUT",
                   help="files or folders held out whole as the validation split (repeatable)")
    q.add_argument("--val-fraction", type=float, metavar="F", help="share of documents held out (default 0.05)")
    q.add_argument("--text-field", metavar="NAME", help="text key of .jsonl records / .parquet columns")
    q.add_argument("--on-error", choices=("fail", "skip"), help="unreadable or non-UTF-8 files: stop (default) or "
                   "skip and report them")
    q.add_argument("--simplified", action="store_const", const=True, help="convert Traditional to Simplified "
                   "Chinese (needs opencc)")
    q.add_argument("--near-dup-threshold", type=float, metavar="J", help="MinHash Jaccard threshold (default 0.8)")
    q.add_argument("--no-dedup", action="store_true", help="keep duplicates")
    q.add_argument("--no-filter", action="store_true", help="keep every non-empty document")
    q.set_defaults(run=prepare_command)


def prepare_command(args: argparse.Namespace) -> int:
    from luoxia.core.config import from_dict, load_toml
    from luoxia.data.prepare import DataConfig, prepare

    cfg = from_dict(DataConfig, load_toml(args.config), where=args.config) if args.config else DataConfig()
    if args.inputs:
        cfg.inputs = list(args.inputs)
    for flag, key in (("out", "out"), ("tokenizer", "tokenizer"), ("vocab_size", "vocab_size"),
                      ("val_fraction", "val_fraction"), ("text_field", "text_field"), ("on_error", "on_error"),
                      ("simplified", "simplified")):
        if getattr(args, flag) is not None:
            setattr(cfg, key, getattr(args, flag))
    if args.val_inputs:
        cfg.val_inputs = list(args.val_inputs)
    if args.near_dup_threshold is not None:
        cfg.dedup.threshold = args.near_dup_threshold
    if args.no_dedup:
        cfg.dedup.exact = cfg.dedup.near = False
    if args.no_filter:
        cfg.filters.enabled = False
    report = prepare(cfg, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(report.summary())
    return 0
