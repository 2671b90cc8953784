"""The data report: what went in, what was removed by which rule (with examples), what came out.

Written as `report.json` (versioned, for programs) and `report.md` (for people). Every document
read is accounted for: docs_in == docs_out + the sum of removed docs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from luoxia.core import atomic

REPORT_VERSION = 1
MAX_EXAMPLES = 3
EXAMPLE_CHARS = 200


@dataclasses.dataclass
class Removal:
    docs: int = 0
    chars: int = 0
    examples: list[dict] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Report:
    inputs: list[str] = dataclasses.field(default_factory=list)
    files: int = 0
    skipped_files: list[dict] = dataclasses.field(default_factory=list)
    docs_in: int = 0
    chars_in: int = 0
    docs_out: int = 0
    chars_out: int = 0  # after cleaning
    removed: dict[str, Removal] = dataclasses.field(default_factory=dict)
    tokenizer: dict = dataclasses.field(default_factory=dict)
    shards: dict = dataclasses.field(default_factory=dict)

    def remove(self, rule: str, text: str, source: str) -> None:
        r = self.removed.setdefault(rule, Removal())
        r.docs += 1
        r.chars += len(text)
        if len(r.examples) < MAX_EXAMPLES:
            r.examples.append({"source": source, "text": text[:EXAMPLE_CHARS]})

    def to_dict(self) -> dict:
        return {"version": REPORT_VERSION, **dataclasses.asdict(self)}

    def save(self, directory: Path) -> None:
        atomic.write_text(directory / "report.json", json.dumps(self.to_dict(), ensure_ascii=False, indent=2))
        atomic.write_text(directory / "report.md", self.markdown())

    def markdown(self) -> str:
        lines = ["# Data report", "", f"Inputs: {', '.join(self.inputs)} ({self.files} files)", "",
                 "| | documents | characters |", "|---|---:|---:|",
                 f"| in | {self.docs_in:,} | {self.chars_in:,} |"]
        for rule, r in sorted(self.removed.items(), key=lambda kv: -kv[1].docs):
            lines.append(f"| removed: {rule} | {r.docs:,} | {r.chars:,} |")
        lines.append(f"| out | {self.docs_out:,} | {self.chars_out:,} |")
        if self.skipped_files:
            lines += ["", "## Skipped files", ""] + [f"- `{s['path']}`: {s['reason']}" for s in self.skipped_files]
        if self.tokenizer:
            lines += ["", "## Tokenizer", ""] + [f"- {k}: {v}" for k, v in self.tokenizer.items()]
        if self.shards:
            lines += ["", "## Token shards", ""] + [f"- {k}: {v:,}" if isinstance(v, int) else f"- {k}: {v}"
                                                     for k, v in self.shards.items()]
        if self.removed:
            lines += ["", "## Examples of removed documents"]
            for rule, r in sorted(self.removed.items()):
                lines += ["", f"### {rule}", ""]
                for ex in r.examples:
                    snippet = ex["text"].replace("\n", " ⏎ ")
                    lines.append(f"- `{ex['source']}`: {snippet}")
        return "\n".join(lines) + "\n"

    def summary(self) -> str:
        ranked = sorted(self.removed.items(), key=lambda kv: -kv[1].docs)
        removed = ", ".join(f"{rule} {r.docs:,}" for rule, r in ranked)
        return (f"{self.docs_in:,} documents in ({self.chars_in:,} chars), {self.docs_out:,} out "
                f"({self.chars_out:,} chars); removed: {removed or 'none'}")
