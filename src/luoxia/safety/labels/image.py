"""Image labels: a corner text, and XMP with TC260:AIGC and IPTC DigitalSourceType.

PNG keeps its XMP in the iTXt chunk `XML:com.adobe.xmp`, JPEG in an APP1 segment, WebP in its
`XMP ` chunk. The signature covers the decoded pixels (mode, size, bytes), so it does not depend
on where the metadata sits; for lossy formats we hash what the file decodes to.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import re
from pathlib import Path

import numpy as np

from luoxia.core import atomic
from luoxia.core.errors import CorruptFileError, InvalidParameterError
from luoxia.safety.labels import Found, aigc
from luoxia.safety.labels.visible import LabelOptions, draw_image_label, image_label_present

TC260_NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
IPTC_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
LUOXIA_NS = "urn:luoxia:ns:1.0"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def as_image(content: object):
    """A PIL image from a PIL image or a uint8 array (H, W), (H, W, 3) or (H, W, 4)."""
    from PIL import Image

    if isinstance(content, Image.Image):
        return content
    array = np.asarray(content)
    if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidParameterError(f"an image artifact needs a PIL image or a uint8 array (H, W[, 3|4]); got "
                                    f"{array.dtype} {array.shape}")
    return Image.fromarray(array)


def pixel_sha256(image) -> str:
    return aigc.sha256(f"{image.mode}:{image.width}x{image.height}:".encode() + image.tobytes())


def xmp_packet(label: dict, provenance: dict) -> str:
    def esc(s: str) -> str:
        return html.escape(s, quote=False)

    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:TC260="{TC260_NS}" xmlns:Iptc4xmpExt="{IPTC_NS}" '
        f'xmlns:luoxia="{LUOXIA_NS}">\n'
        f'   <TC260:AIGC>{esc(aigc.dumps(label))}</TC260:AIGC>\n'
        f'   <Iptc4xmpExt:DigitalSourceType>{TRAINED_ALGORITHMIC_MEDIA}</Iptc4xmpExt:DigitalSourceType>\n'
        f'   <luoxia:Provenance>{esc(json.dumps(provenance, ensure_ascii=True))}</luoxia:Provenance>\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>'
    )


def _encode(image, fmt: str, xmp: str | None) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    buffer = io.BytesIO()
    kwargs: dict = {}
    if fmt == "png":
        if xmp is not None:
            info = PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp, zip=False)
            kwargs["pnginfo"] = info
    else:
        kwargs["quality"] = 92
        if xmp is not None:
            kwargs["xmp"] = xmp.encode()
    if fmt == "jpeg" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(buffer, PIL_FORMAT[fmt], **kwargs)
    return buffer.getvalue()


def _decode(data: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.copy(), dict(im.info)


def write(path: Path, fmt: str, content: object, provenance, options: LabelOptions) -> None:
    image = as_image(content)
    if options.visible:
        image = draw_image_label(image, options)
    plain, _ = _decode(_encode(image, fmt, None))  # what the file will decode to
    payload = pixel_sha256(plain)
    provenance = dataclasses.replace(provenance, content_sha256=payload, labels=options.record("image"))
    record = provenance.to_dict()
    label = aigc.make_label(payload, provenance.produce_id, record, options.producer)
    data = _encode(image, fmt, xmp_packet(label, record))
    assert pixel_sha256(_decode(data)[0]) == payload, "the encoder is not deterministic"
    atomic.write_bytes(path, data)


def read_xmp(info: dict) -> str | None:
    xmp = info.get("XML:com.adobe.xmp") or info.get("xmp")
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8", errors="replace")
    return xmp


def xmp_value(xmp: str, prefix: str, name: str) -> list[str]:
    """Every value of `prefix:name` in an XMP packet, as element text or attribute."""
    elements = re.findall(rf"<{prefix}:{name}>([^<]*)</{prefix}:{name}>", xmp)
    attributes = re.findall(rf'\b{prefix}:{name}="([^"]*)"', xmp)
    return [html.unescape(v) for v in elements + attributes]


def read(path: Path, fmt: str) -> Found:
    data = path.read_bytes()
    try:
        image, info = _decode(data)
    except Exception as e:  # Pillow raises many types for broken files
        raise CorruptFileError(f"{path} is not a readable {fmt.upper()} image ({e}); check the file") from None
    found = Found(fmt, None, 0, None, pixel_sha256(image), None)
    xmp = read_xmp(info)
    if xmp is None:
        found.notes.append("no XMP packet")
        return found
    labels = xmp_value(xmp, "TC260", "AIGC")
    found.copies = data.count(b"<TC260:AIGC>") + data.count(b' TC260:AIGC="')
    if TRAINED_ALGORITHMIC_MEDIA not in xmp_value(xmp, "Iptc4xmpExt", "DigitalSourceType"):
        found.notes.append("no IPTC DigitalSourceType trainedAlgorithmicMedia")
    provenance = xmp_value(xmp, "luoxia", "Provenance")
    if provenance:
        found.provenance = json.loads(provenance[0])
    found.take_label(labels, "TC260:AIGC")
    record = (found.provenance or {}).get("labels", {})
    found.visible = image_label_present(image, record) if record.get("visible") else None
    return found
