"""Text labels: plain text with a sidecar `FILE.aigc.json`; Markdown with front matter.

Plain text (the sidecar holds the label first, then the provenance fields, as before):

    FILE            the text, a blank line, then "[AI生成 · AI-generated · luoxia]"
    FILE.aigc.json  {"AIGC": {"Label": "1", ...}, "model": "smollm2", "params": {...}, ...}

Markdown (no sidecar; the signature covers the body after the front matter):

    ---
    AIGC: {"Label":"1","ContentProducer":"luoxia",...}
    provenance: {"model":"smollm2",...}
    ---
    the text ...
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from luoxia.core import atomic
from luoxia.core.artifact import TEXT_NOTICE, sidecar_path
from luoxia.safety.labels import Found, aigc
from luoxia.safety.labels.visible import LabelOptions, has_text_notice


def body_of(text: str, options: LabelOptions) -> bytes:
    return (f"{text}\n\n{TEXT_NOTICE}\n" if options.visible else f"{text}\n").encode()


def write(path: Path, fmt: str, content: object, provenance, options: LabelOptions) -> None:
    body = body_of(str(content), options)
    provenance = dataclasses.replace(provenance.with_content(body), labels=options.record("text"))
    record = provenance.to_dict()
    label = aigc.make_label(aigc.sha256(body), provenance.produce_id, record, options.producer)
    if fmt == "markdown":
        front = (f"---\nAIGC: {aigc.dumps(label['AIGC'])}\n"
                 f"provenance: {json.dumps(record, ensure_ascii=True, separators=(',', ':'))}\n---\n")
        atomic.write_bytes(path, front.encode() + body)
        return
    atomic.write_bytes(path, body)
    atomic.write_text(sidecar_path(path), json.dumps({**label, **record}, ensure_ascii=False, indent=2))


def read(path: Path, fmt: str) -> Found:
    data = path.read_bytes()
    if fmt == "markdown":
        return _read_markdown(data)
    text = data.decode("utf-8", errors="replace")
    found = Found("text", None, 0, None, aigc.sha256(data), has_text_notice(text))
    side = sidecar_path(path)
    if not side.exists():
        found.notes.append(f"no sidecar {side.name}")
        return found
    try:
        record = json.loads(side.read_text(encoding="utf-8"))
        label = aigc.parse(json.dumps({"AIGC": record.pop("AIGC", None)}))
    except (ValueError, AttributeError) as e:
        found.notes.append(f"sidecar {side.name} holds no valid AIGC label ({e})")
        return found
    found.label, found.copies, found.provenance = label, 1, record
    return found


def _read_markdown(data: bytes) -> Found:
    text = data.decode("utf-8", errors="replace")
    found = Found("markdown", None, 0, None, aigc.sha256(data), has_text_notice(text))
    if not text.startswith("---\n") or (end := text.find("\n---\n", 3)) < 0:
        found.notes.append("no front matter")
        return found
    front, body = text[4:end], data[len(text[:end + 5].encode()):]
    found.payload_sha256 = aigc.sha256(body)
    found.visible = has_text_notice(body.decode("utf-8", errors="replace"))
    labels = [line[len("AIGC: "):] for line in front.splitlines() if line.startswith("AIGC:")]
    found.copies = len(labels)
    for line in front.splitlines():
        if line.startswith("provenance: "):
            try:
                found.provenance = json.loads(line[len("provenance: "):])
            except ValueError:
                found.notes.append("front matter provenance is not JSON")
    if labels:
        try:
            found.label = aigc.parse(json.dumps({"AIGC": json.loads(labels[0])}))
        except ValueError as e:
            found.notes.append(f"front matter AIGC is not a valid label ({e})")
    return found
