"""MIDI labels: a meta text event `{"AIGC": {...}}` at the start of track 0, and a second one with
`{"luoxia_provenance": {...}}`. MIDI has no visible form, so the implicit label is the label.

The signature covers every other event (delta time and bytes, in track order) plus the file type
and resolution, so it does not depend on how a writer encodes running status.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, InvalidParameterError
from luoxia.safety.labels import Found, aigc
from luoxia.safety.labels.visible import LabelOptions

PROVENANCE_KEY = '{"luoxia_provenance":'


def as_midi(content: object):
    import mido

    if isinstance(content, mido.MidiFile):
        return content
    if isinstance(content, (bytes, bytearray)):
        try:
            return mido.MidiFile(file=io.BytesIO(bytes(content)))
        except (OSError, EOFError, ValueError) as e:
            raise InvalidParameterError(f"the MIDI artifact's bytes are not a MIDI file ({e})") from None
    raise InvalidParameterError(f"a midi artifact needs MIDI file bytes or a mido.MidiFile, "
                                f"got {type(content).__name__}")


def _ours(msg) -> bool:
    return msg.is_meta and msg.type == "text" and msg.text.startswith(('{"AIGC":', PROVENANCE_KEY))


def payload_sha256(midi) -> str:
    tracks = [[[msg.time, bytes(msg.bytes()).hex()] for msg in track if not _ours(msg)] for track in midi.tracks]
    return aigc.sha256(aigc.canonical_json([midi.type, midi.ticks_per_beat, tracks]))


def _normalised(midi):
    """The file as it reads back after saving (mido adds end-of-track events, for one), without our events."""
    import mido

    clean = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    clean.tracks.extend(mido.MidiTrack([m for m in track if not _ours(m)]) for track in midi.tracks)
    buffer = io.BytesIO()
    clean.save(file=buffer)
    return mido.MidiFile(file=io.BytesIO(buffer.getvalue()))


def write(path: Path, fmt: str, content: object, provenance, options: LabelOptions) -> None:
    import mido

    midi = _normalised(as_midi(content))
    payload = payload_sha256(midi)
    provenance = dataclasses.replace(provenance, content_sha256=payload, labels=options.record("midi"))
    record = provenance.to_dict()
    label = aigc.make_label(payload, provenance.produce_id, record, options.producer)
    out = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    for i, track in enumerate(midi.tracks):
        new = mido.MidiTrack([msg for msg in track if not _ours(msg)])
        if i == 0:
            new.insert(0, mido.MetaMessage("text", text=json.dumps({"luoxia_provenance": record}, ensure_ascii=True)))
            new.insert(0, mido.MetaMessage("text", text=aigc.dumps(label)))
        out.tracks.append(new)
    buffer = io.BytesIO()
    out.save(file=buffer)
    atomic.write_bytes(path, buffer.getvalue())


def read(path: Path, fmt: str) -> Found:
    import mido

    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError) as e:
        raise CorruptFileError(f"{path} is not a readable MIDI file ({e}); check the file") from None
    found = Found("midi", None, 0, None, payload_sha256(midi), None)
    texts = [msg.text for track in midi.tracks for msg in track if _ours(msg)]
    labels = [t for t in texts if t.startswith('{"AIGC":')]
    found.copies = len(labels)
    for t in texts:
        if t.startswith(PROVENANCE_KEY):
            found.provenance = json.loads(t)["luoxia_provenance"]
    found.take_label(labels, "AIGC text event", "no AIGC meta text event")
    return found
