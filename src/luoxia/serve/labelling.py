"""AI-generated labels on API responses.

Text keeps the visible notice at its end, as saved text files do (a request may drop it only when
the server allows, and the provenance says so). Every choice carries the implicit label: the same
signed GB 45438 `AIGC` object that files carry, over the UTF-8 bytes of the text as delivered,
plus the provenance it signs. So a client can store `text`, `aigc` and `provenance` together and
`luoxia.safety.labels.aigc.verify` them later.
"""

from __future__ import annotations

import dataclasses

from luoxia.core.artifact import TEXT_NOTICE
from luoxia.core.provenance import Provenance
from luoxia.safety.labels import aigc

NOTICE_SUFFIX = f"\n\n{TEXT_NOTICE}"


def visible_record(visible: bool) -> dict:
    if visible:
        return {"visible": True, "text": TEXT_NOTICE, "where": "end"}
    return {"visible": False, "disabled_by": "request (visible_label=false; server started with --allow-unlabelled)"}


def label_text(delivered: str, provenance: Provenance, visible: bool) -> dict:
    """`{"aigc": {...}, "provenance": {...}}` for `delivered`, the text exactly as the client got it."""
    body = delivered.encode()
    provenance = dataclasses.replace(provenance.with_content(body), labels=visible_record(visible))
    record = provenance.to_dict()
    return {"aigc": aigc.make_label(aigc.sha256(body), provenance.produce_id, record)["AIGC"], "provenance": record}


def verify_text(delivered: str, labels: dict) -> str:
    """"ok", "tampered" or "unverifiable" (see `aigc.verify`) for a response's text and its labels."""
    return aigc.verify({"AIGC": labels["aigc"]}, aigc.sha256(delivered.encode()), labels["provenance"])
