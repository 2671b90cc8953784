"""Video labels: the corner text on the opening frames (at least 2 s), and an MP4 metadata key `AIGC`.

Animated GIF and WebP (`write_animation`, `read_animation`) carry the same visible label and the
implicit one where those formats keep text: GIF in a comment extension (`AIGC=<label>` and
`luoxia_provenance=<json>` lines), WebP in its `XMP ` chunk (TC260:AIGC, as for still images).
WebP frames are lossless; the signature covers the decoded RGB frames of the file.

Frames are encoded with the ffmpeg of imageio-ffmpeg (H.264, yuv420p). ffmpeg keeps a custom MP4
key only with `-movflags use_metadata_tags` (without it the key is silently dropped), so the file
is muxed twice: once plain, to hash the encoded packets (ffmpeg's `hash` muxer over a stream
copy, which is what the signature covers), then with the label; `read` checks the key came back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, InvalidParameterError
from luoxia.safety.labels import Found, aigc
from luoxia.safety.labels.visible import VIDEO_LABEL_SECONDS, LabelOptions, draw_image_label, image_label_present


def as_video(content: object) -> tuple[np.ndarray, float]:
    frames, fps = (content.frames, content.fps) if hasattr(content, "frames") else content
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(frames) == 0 or fps <= 0:
        raise InvalidParameterError(f"a video artifact needs uint8 frames (T, H, W, 3) and fps > 0; got "
                                    f"{frames.dtype} {frames.shape} at {fps} fps")
    return frames, float(fps)


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str], data: bytes | None = None) -> bytes:
    done = subprocess.run([_ffmpeg(), "-v", "error", *args], input=data, capture_output=True)
    if done.returncode:
        raise CorruptFileError(f"ffmpeg failed: {done.stderr.decode(errors='replace').strip()[-300:]}")
    return done.stdout


def packet_sha256(path: Path) -> str:
    out = _run(["-i", str(path), "-map", "0", "-c", "copy", "-f", "hash", "-hash", "sha256", "-"])
    return out.decode().strip().split("=", 1)[-1]


def labelled_frames(frames: np.ndarray, fps: float, options: LabelOptions) -> np.ndarray:
    from PIL import Image

    frames = frames.copy()
    for i in range(min(len(frames), math.ceil(VIDEO_LABEL_SECONDS * fps))):
        frames[i] = np.asarray(draw_image_label(Image.fromarray(frames[i]), options).convert("RGB"))
    return frames


def write(path: Path, fmt: str, content: object, provenance, options: LabelOptions) -> None:
    if fmt in ANIMATIONS:
        return write_animation(path, fmt, content, provenance, options)
    frames, fps = as_video(content)
    if options.visible:
        frames = labelled_frames(frames, fps, options)
    t, h, w, _ = frames.shape
    with tempfile.TemporaryDirectory() as tmp:
        plain, final = Path(tmp) / "plain.mp4", Path(tmp) / "final.mp4"
        _run(["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", f"{fps}", "-i", "-",
              "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18",
              "-pix_fmt", "yuv420p", "-map_metadata", "-1", "-y", str(plain)], frames.tobytes())
        payload = packet_sha256(plain)
        provenance = dataclasses.replace(provenance, content_sha256=payload, labels=options.record("video"))
        record = provenance.to_dict()
        label = aigc.make_label(payload, provenance.produce_id, record, options.producer)
        _run(["-i", str(plain), "-map", "0", "-c", "copy", "-metadata", f"AIGC={aigc.dumps(label)}",
              "-metadata", f"luoxia_provenance={json.dumps(record, ensure_ascii=True)}",
              "-movflags", "use_metadata_tags", "-y", str(final)])
        if packet_sha256(final) != payload or metadata(final).get("AIGC") != [aigc.dumps(label)]:
            raise CorruptFileError("ffmpeg did not keep the AIGC metadata or the packets; check imageio-ffmpeg")
        atomic.write_bytes(path, final.read_bytes())


def metadata(path: Path) -> dict[str, list[str]]:
    """The global metadata of a media file (every value of every key), read with ffmpeg's ffmetadata
    muxer, which escapes `=`, `;`, `#`, `\\` and newlines with a backslash."""
    text = _run(["-i", str(path), "-f", "ffmetadata", "-"]).decode("utf-8", errors="replace")
    out: dict[str, list[str]] = {}
    parts, current, escaped = [], [""], False  # current: [key] or [key, value]
    for c in text:
        if escaped:
            current[-1] += c
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == "=" and len(current) == 1:
            current.append("")
        elif c == "\n":
            parts.append(current)
            current = [""]
        else:
            current[-1] += c
    parts.append(current)
    for item in parts:
        if len(item) == 2 and not item[0].startswith((";", "[")):
            out.setdefault(item[0], []).append(item[1])
    return out


def first_frame(path: Path):
    from PIL import Image

    info = subprocess.run([_ffmpeg(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    size = next(w for w in info.replace(",", " ").split() if "x" in w and w.split("x")[0].isdigit()
                and w.split("x")[-1].isdigit())
    w, h = (int(v) for v in size.split("x"))
    raw = _run(["-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
    return Image.fromarray(np.frombuffer(raw[: w * h * 3], dtype=np.uint8).reshape(h, w, 3))


def read(path: Path, fmt: str) -> Found:
    if fmt in ANIMATIONS:
        return read_animation(path, fmt)
    found = Found("mp4", None, 0, None, packet_sha256(path), None)
    meta = metadata(path)
    labels = [v for k, values in meta.items() if k.lower() == "aigc" for v in values]
    found.copies = len(labels)
    if "luoxia_provenance" in meta:
        found.provenance = json.loads(meta["luoxia_provenance"][0])
    found.take_label(labels, "AIGC metadata", "no AIGC metadata key")
    record = (found.provenance or {}).get("labels", {})
    if record.get("visible"):
        found.visible = image_label_present(first_frame(path), record)
    return found


ANIMATIONS = ("gif", "webp_anim")


def frames_sha256(frames: np.ndarray) -> str:
    t, h, w, _ = frames.shape
    return aigc.sha256(f"rgb:{t}x{h}x{w}:".encode() + np.ascontiguousarray(frames).tobytes())


def _encode_animation(frames: np.ndarray, fps: float, fmt: str, text: str | None) -> bytes:
    import io

    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    duration = max(10, round(1000 / fps))  # milliseconds per frame
    if fmt == "gif":
        extra = {"comment": text.encode()} if text is not None else {}
        images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=duration, loop=0, **extra)
    else:
        extra = {"xmp": text.encode()} if text is not None else {}
        images[0].save(buffer, "WEBP", save_all=True, append_images=images[1:], duration=duration, loop=0,
                       lossless=True, quality=100, method=4, **extra)
    return buffer.getvalue()


def decode_animation(data: bytes) -> tuple[np.ndarray, dict]:
    """(RGB frames (T, H, W, 3), the first frame's info) of a GIF or WebP file's bytes."""
    import io

    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(data)) as im:
        info = dict(im.info)
        frames = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
    return frames, info


def write_animation(path: Path, fmt: str, content: object, provenance, options: LabelOptions) -> None:
    from luoxia.safety.labels.image import xmp_packet

    frames, fps = as_video(content)
    if options.visible:
        frames = labelled_frames(frames, fps, options)
    decoded, _ = decode_animation(_encode_animation(frames, fps, fmt, None))
    payload = frames_sha256(decoded)
    provenance = dataclasses.replace(provenance, content_sha256=payload, labels=options.record("video"))
    record = provenance.to_dict()
    label = aigc.make_label(payload, provenance.produce_id, record, options.producer)
    # the frame duration too: GIF and WebP encoders merge identical consecutive frames into longer ones
    ms = max(10, round(1000 / fps))
    text = (f"AIGC={aigc.dumps(label)}\nluoxia_provenance={json.dumps(record, ensure_ascii=True)}\n"
            f"luoxia_frame_ms={ms}" if fmt == "gif" else
            xmp_packet(label, record).replace("</rdf:Description>", f"<luoxia:FrameMs>{ms}</luoxia:FrameMs>\n"
                                              "  </rdf:Description>"))
    data = _encode_animation(frames, fps, fmt, text)
    if frames_sha256(decode_animation(data)[0]) != payload:
        raise CorruptFileError(f"the {fmt.upper()} encoder changed the frames when the label was added; use .mp4")
    atomic.write_bytes(path, data)


def read_animation(path: Path, fmt: str) -> Found:
    from luoxia.safety.labels.image import read_xmp, xmp_value

    data = path.read_bytes()
    try:
        frames, info = decode_animation(data)
    except Exception as e:  # Pillow raises many types for broken files
        raise CorruptFileError(f"{path} is not a readable {fmt.split('_')[0].upper()} animation ({e})") from None
    found = Found(fmt, None, 0, None, frames_sha256(frames), None)
    if fmt == "gif":
        comment = info.get("comment", b"")
        lines = (comment.decode("utf-8", errors="replace") if isinstance(comment, bytes) else str(comment)).split("\n")
        labels = [ln[len("AIGC="):] for ln in lines if ln.startswith("AIGC=")]
        provenance = [ln[len("luoxia_provenance="):] for ln in lines if ln.startswith("luoxia_provenance=")]
        where = "GIF comment AIGC"
    else:
        xmp = read_xmp(info) or ""
        labels, provenance = xmp_value(xmp, "TC260", "AIGC"), xmp_value(xmp, "luoxia", "Provenance")
        where = "XMP TC260:AIGC"
    found.copies = len(labels)
    if provenance:
        found.provenance = json.loads(provenance[0])
    found.take_label(labels, where, f"no {where} label")
    record = (found.provenance or {}).get("labels", {})
    if record.get("visible"):
        from PIL import Image

        found.visible = image_label_present(Image.fromarray(frames[0]), record)
    return found
