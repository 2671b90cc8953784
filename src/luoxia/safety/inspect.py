"""Read a file's AI-generated labels back and verify them: `luoxia inspect FILE...`.

A file is
- "labelled"     (exit 0): one AIGC label, signature valid with this machine's key, the visible
                 label present (or its absence explicitly recorded, or the format has none);
- "missing"      (exit 3): no implicit label, or no visible label where one belongs;
- "tampered"     (exit 4): the signature does not match the content, label fields or provenance,
                 or the label is malformed or present more than once;
- "unverifiable" (exit 5): labelled, but signed with another key (set $LUOXIA_LABEL_KEY to verify).
Several files: the worst status wins (tampered > missing > unverifiable > labelled).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from luoxia.core.errors import UserFileError
from luoxia.safety.labels import Found, aigc, read

EXIT = {"labelled": 0, "missing": 3, "tampered": 4, "unverifiable": 5}
SEVERITY = ["labelled", "unverifiable", "missing", "tampered"]


@dataclasses.dataclass
class Report:
    path: Path
    status: str
    found: Found
    problems: list[str]

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]


def inspect(path: str | Path) -> Report:
    path = Path(path)
    if not path.is_file():
        raise UserFileError(f"no file {path}; check the path")
    found = read(path)
    problems = list(found.notes)
    status = "labelled"
    if found.label is None:
        status = "missing"
        problems.append("no implicit AIGC label")
    else:
        if found.copies != 1:
            status = "tampered"
            problems.append(f"{found.copies} copies of the AIGC label (the standard allows exactly one)")
        verdict = aigc.verify(found.label, found.payload_sha256, found.provenance)
        if verdict == "tampered":
            status = "tampered"
            problems.append("ReservedCode1 does not match the content, label fields or provenance")
        elif verdict == "unverifiable" and status == "labelled":
            status = "unverifiable"
            problems.append(f"signed with key {found.label['AIGC']['ReservedCode1'].split(':')[1]}, not this "
                            f"machine's {aigc.key_id(aigc.label_key())}; set ${aigc.KEY_ENV} to verify")
    record = (found.provenance or {}).get("labels", {})
    if record.get("visible") is False:
        problems.append(f"visible label off, explicitly: {record.get('disabled_by', 'recorded')}")
    elif found.visible is False:
        problems.append("no visible AI-generated label")
        if status == "labelled":
            status = "missing"
    return Report(path, status, found, problems)


def worst(reports: list[Report]) -> int:
    return EXIT[max((r.status for r in reports), key=SEVERITY.index)] if reports else 0
