"""The implicit label: GB 45438-2025 Appendix E metadata, signed so that tampering shows.

    {"AIGC":{"Label":"1","ContentProducer":"luoxia","ProduceID":"9f2c…","ReservedCode1":"v1:1a2b3c4d:…",
             "ContentPropagator":"luoxia","PropagateID":"9f2c…","ReservedCode2":"v1:1a2b3c4d:…"}}

Keys in the standard's order, values printable ASCII. On first write the propagator fields equal
the producer fields. `ReservedCode1` is an HMAC-SHA256 (keyed) of the content's canonical hash,
the five identity fields and the provenance, so changing any of them is detected by `verify`.
Its form is `v1:<key id>:<hex>`: the key id (first 8 hex digits of the key's SHA-256) tells
which key signed it, so a file signed elsewhere is reported as unverifiable, not as tampered.

The key: `$LUOXIA_LABEL_KEY` when set, else `$LUOXIA_HOME/keys/label.key`, made (32 random bytes)
on first use. Keep it to verify your files later; share it with whoever must verify them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from luoxia.core import atomic
from luoxia.core.errors import InvalidParameterError
from luoxia.core.paths import luoxia_home

FIELDS = ("Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID",
          "ReservedCode2")
SIGNED = ("Label", "ContentProducer", "ProduceID", "ContentPropagator", "PropagateID")
VERSION = "v1"
KEY_ENV = "LUOXIA_LABEL_KEY"


def label_key() -> bytes:
    """The signing key: $LUOXIA_LABEL_KEY, else the key file in $LUOXIA_HOME (made on first use)."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV].encode()
    path = luoxia_home() / "keys" / "label.key"
    if not path.exists():
        atomic.write_bytes(path, secrets.token_hex(32).encode())
        path.chmod(0o600)
    return path.read_bytes().strip()


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def printable_ascii(value: str, name: str) -> str:
    if not all(" " <= c <= "~" for c in value):
        raise InvalidParameterError(f"{name} {value!r} must be printable ASCII (GB 45438 Appendix E); "
                                    "use Latin letters, digits and punctuation")
    return value


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def _mac(key: bytes, fields: dict, payload_sha256: str, provenance: dict | None) -> str:
    message = b"\n".join([
        b"luoxia-aigc-" + VERSION.encode(), payload_sha256.encode(),
        canonical_json([fields[k] for k in SIGNED]),
        hashlib.sha256(canonical_json(provenance or {})).hexdigest().encode(),
    ])
    return f"{VERSION}:{key_id(key)}:{hmac.new(key, message, hashlib.sha256).hexdigest()}"


def make_label(payload_sha256: str, produce_id: str, provenance: dict | None, producer: str = "luoxia",
               key: bytes | None = None) -> dict:
    """The `{"AIGC": {...}}` object for content whose canonical bytes hash to `payload_sha256`."""
    printable_ascii(producer, "ContentProducer")
    printable_ascii(produce_id, "ProduceID")
    fields = {"Label": "1", "ContentProducer": producer, "ProduceID": produce_id,
              "ContentPropagator": producer, "PropagateID": produce_id}
    code = _mac(key or label_key(), fields, payload_sha256, provenance)
    ordered = {k: (code if k.startswith("ReservedCode") else fields[k]) for k in FIELDS}
    return {"AIGC": ordered}


def dumps(label: dict) -> str:
    """Compact ASCII JSON, keys in the standard's order."""
    return json.dumps(label, ensure_ascii=True, separators=(",", ":"))


def parse(text: str | bytes) -> dict:
    """`{"AIGC": {...}}` from its JSON; raises ValueError when it is not a well-formed label."""
    label = json.loads(text)
    fields = label.get("AIGC") if isinstance(label, dict) else None
    if not isinstance(fields, dict) or tuple(fields) != FIELDS:
        raise ValueError(f"not an AIGC label with the fields {', '.join(FIELDS)} in order")
    if not all(isinstance(v, str) and all(" " <= c <= "~" for c in v) for v in fields.values()):
        raise ValueError("AIGC label values must be printable ASCII strings")
    return label


def verify(label: dict, payload_sha256: str, provenance: dict | None, key: bytes | None = None) -> str:
    """"ok", "tampered" (signed with this key, but content, fields or provenance changed), or
    "unverifiable" (signed with another key)."""
    fields = label["AIGC"]
    code = fields["ReservedCode1"]
    key = key or label_key()
    parts = code.split(":")
    if len(parts) != 3 or parts[0] != VERSION:
        return "tampered"
    if parts[1] != key_id(key):
        return "unverifiable"
    if fields["Label"] != "1" or not hmac.compare_digest(code, _mac(key, fields, payload_sha256, provenance)):
        return "tampered"
    return "ok"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_file() -> Path:
    return luoxia_home() / "keys" / "label.key"
