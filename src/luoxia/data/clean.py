"""Text cleaning: what every document goes through before filters look at it.

    clean_text("\x1b[32m《静夜思》\x1b[m\r\n床前明月光，  疑是地上霜。")  →  "《静夜思》\n床前明月光， 疑是地上霜。"

Steps, in order: HTML to text (HTML documents only), ANSI escape sequences out, Unicode NFKC
(full-width letters and digits become ASCII; Chinese full-width punctuation such as ，：？ is kept,
since NFKC would turn it into ASCII and change how Chinese text reads), control and zero-width
characters out, whitespace normalised, optionally Traditional → Simplified Chinese (opencc).
"""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser

from luoxia.core.errors import InvalidParameterError

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character escapes.
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Full-width punctuation (not letters or digits) of the U+FF01..FF5E block, and the ideographic space.
FULLWIDTH_PUNCT_RE = re.compile(r"[\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff5e]+")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ufffe]")
SPACES_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f]+")
BLANK_LINES_RE = re.compile(r"\n{3,}")


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


def nfkc(text: str) -> str:
    """NFKC everywhere except full-width punctuation, which Chinese text uses on purpose."""
    out, last = [], 0
    for m in FULLWIDTH_PUNCT_RE.finditer(text):
        out.append(unicodedata.normalize("NFKC", text[last:m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(unicodedata.normalize("NFKC", text[last:]))
    return "".join(out)


def normalize_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u3000", " ")
    lines = [SPACES_RE.sub(" ", line).strip() for line in text.split("\n")]
    return BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip()


class _TextExtractor(HTMLParser):
    BLOCK = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article", "pre",
             "blockquote", "title", "ul", "ol", "table", "header", "footer"}
    SKIP = {"script", "style", "noscript", "template", "svg", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML page, one block element per line; scripts and styles dropped.

    >>> html_to_text("<p>a &amp; b</p><script>x()</script><p>c</p>")
    'a & b\\n\\nc'
    """
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = html.unescape("".join(parser.parts))
    return normalize_whitespace(" ".join(text.split(" ")))


_converter = None


def to_simplified(text: str) -> str:
    global _converter
    if _converter is None:
        try:
            import opencc
        except ImportError:
            raise InvalidParameterError(
                "Traditional→Simplified conversion needs opencc; `pip install opencc` or drop --simplified"
            ) from None
        _converter = opencc.OpenCC("t2s")
    return _converter.convert(text)


def clean_text(text: str, *, is_html: bool = False, simplified: bool = False) -> str:
    if is_html:
        text = html_to_text(text)
    text = strip_ansi(text)
    text = nfkc(text)
    text = CONTROL_RE.sub("", text)
    text = normalize_whitespace(text)
    if simplified:
        text = to_simplified(text)
    return text
