"""`luoxia inspect FILE...` (AI-generated labels) and `luoxia detect FILE --key KEY` (text watermark).

inspect exit status: 0 labelled, 3 label missing, 4 tampered, 5 signed with another key (see
`luoxia.safety.inspect`); 2 for a user error (no such file). detect exits 0 when the watermark is
detected (z above --threshold), 1 when it is not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "inspect", help="read and verify the AI-generated labels of files",
        description="Read the implicit (GB 45438 metadata) and explicit (visible) AI-generated labels of each file, "
                    "verify the signature, print the provenance. Exit status: 0 labelled, 3 missing, 4 tampered, "
                    "5 signed with another key ($LUOXIA_LABEL_KEY); the worst file decides.",
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", dest="as_json", action="store_true", help="one JSON object per file")
    p.set_defaults(run=lambda args: inspect(args.files, args.as_json))

    d = commands.add_parser(
        "detect", help="test a text for the luoxia watermark",
        description="Count the watermark's green tokens in a text file and report the z-score and p-value "
                    "(Kirchenbauer et al. 2023). Exit status 0: watermarked (z > threshold); 1: not.",
    )
    d.add_argument("file", type=Path, metavar="FILE", help='a UTF-8 text file; "-" reads stdin')
    d.add_argument("--key", required=True, help="the watermark key given to `luoxia generate --watermark`")
    d.add_argument("--model", metavar="NAME|PATH", help="the model that generated it (its tokenizer; default smollm2)")
    d.add_argument("--gamma", type=float, help="green-list fraction used when generating (default 0.25)")
    d.add_argument("--threshold", type=float, default=4.0, help="z-score above which it is watermarked (default 4)")
    d.add_argument("--json", dest="as_json", action="store_true", help="print the result as JSON")
    d.set_defaults(run=lambda args: detect(args.file, args.key, args.model, args.gamma, args.threshold, args.as_json))


def inspect(files: list[Path], as_json: bool) -> int:
    from luoxia.safety.inspect import inspect as inspect_file
    from luoxia.safety.inspect import worst

    reports = [inspect_file(f) for f in files]
    for r in reports:
        f = r.found
        if as_json:
            print(json.dumps({"file": str(r.path), "status": r.status, "exit": r.exit_code, "format": f.format,
                              "copies": f.copies, "label": f.label, "visible": f.visible, "problems": r.problems,
                              "provenance": f.provenance}, ensure_ascii=False))
            continue
        print(f"{r.path}: {r.status} ({f.format})")
        if f.label is not None:
            print(f"  implicit: {json.dumps(f.label, separators=(',', ':'))}")
        visible = (f.provenance or {}).get("labels", {})
        shown = {True: "present", False: "NOT FOUND", None: "not checked"}[f.visible]
        if visible:
            shown += " — " + ", ".join(f"{k}={v}" for k, v in visible.items())
        print(f"  visible: {shown}")
        for problem in r.problems:
            print(f"  problem: {problem}")
        if f.provenance:
            p = f.provenance
            print("  provenance:")
            for key in ("model", "model_sha256", "generator", "created", "produce_id", "seed", "content_sha256"):
                if p.get(key) not in (None, ""):
                    print(f"    {key}: {p[key]}")
            for key in ("prompt", "params", "safety"):
                if p.get(key):
                    print(f"    {key}: {json.dumps(p[key], ensure_ascii=False)}")
    return worst(reports)


def detect(file: Path, key: str, model: str | None, gamma: float | None, threshold: float, as_json: bool) -> int:
    import sys

    from luoxia.cli.generate import ModelChoice, load_model
    from luoxia.core.errors import UserFileError
    from luoxia.safety.watermark import WatermarkConfig, detect_text
    from luoxia.text.prompting import as_text

    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as e:
        raise UserFileError(f"cannot read {file}: {e.strerror}; check the path") from None
    config = WatermarkConfig(key=key, **({"gamma": gamma} if gamma is not None else {})).validate()
    text_model = load_model(ModelChoice(model, None, None, None))
    result = detect_text(as_text(data), text_model.tokenizer, text_model.model.config.vocab_size, config)
    flagged = result.z_score > threshold
    if as_json:
        print(json.dumps({**result.to_dict(), "threshold": threshold, "watermarked": flagged}))
    else:
        print(f"{file}: {'watermarked' if flagged else 'not watermarked'} (z > {threshold:g}?)")
        print(f"  tokens scored {result.scored} · green {result.green} ({result.green_fraction:.1%}, "
              f"expected {config.gamma:.0%}) · z = {result.z_score:.2f} · p = {result.p_value:.3g}")
    return 0 if flagged else 1
