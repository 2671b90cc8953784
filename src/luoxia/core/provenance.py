"""Provenance: what made a piece of content, with which parameters, when."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any

import luoxia


@dataclasses.dataclass
class Provenance:
    """Everything needed to tell where generated content came from and to reproduce it.

    `model` is a short id (e.g. "smollm2"), `model_source` the file or folder it was loaded from and
    `model_sha256` that source's hash; `params` the decoding parameters as given; `stats` the counts
    and timings of the run (tokens in and out, time to first token, tokens/s); `labels` what visible
    label the saved file got; `safety` what the content filter, PII redaction and watermark did.
    """

    model: str
    model_source: str = ""
    model_sha256: str = ""
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    seed: int | None = None
    prompt: str = ""
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)
    created: str = dataclasses.field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    produce_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    content_sha256: str = ""
    generator: str = dataclasses.field(default_factory=lambda: f"luoxia {luoxia.__version__}")
    labels: dict[str, Any] = dataclasses.field(default_factory=dict)  # the visible label as written (save fills it)
    safety: dict[str, Any] = dataclasses.field(default_factory=dict)  # filters, PII counts, watermark (no keys)

    def with_content(self, content: bytes) -> Provenance:
        return dataclasses.replace(self, content_sha256=hashlib.sha256(content).hexdigest())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
