"""A content filter for prompts and outputs: categories of terms in Chinese and English.

Matching is done on normalised text (`safety.normalise`: full-width forms, zero-width characters,
case), in two views:
- words: the text split at anything that is not a letter or digit, with runs of single letters
  joined ("b o m b" → "bomb"); English terms (one or more words) must match whole words;
- compact: the text with every non-letter, non-digit removed ("制 造 炸 弹" → "制造炸弹"); terms
  with CJK characters match anywhere in it, and so do Latin terms of at least 10 letters ("how to
  make a b o m b" → "howtomakeabomb"; shorter ones could hit inside ordinary words).
Both views are built in one pass and searched without regular expressions over user terms, so the
time is linear in the input.

The default lists are deliberately short: a few clearly harmful categories, to show the mechanism.
Users add or replace categories with a JSON or TOML file `{"category": ["term", ...]}`:

    ContentFilter.from_file("my_terms.toml")                 # added to the defaults
    ContentFilter.from_file("my_terms.toml", defaults=False) # instead of them
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

from luoxia.core.errors import UserFileError
from luoxia.safety.normalise import normalise

log = logging.getLogger("luoxia.safety")

DEFAULT_CATEGORIES: dict[str, tuple[str, ...]] = {
    "weapons": ("how to make a bomb", "build a pipe bomb", "make a nerve agent", "synthesize sarin",
                "制造炸弹", "自制炸药", "合成沙林"),
    "self_harm": ("how to kill myself", "best way to commit suicide", "自杀方法", "怎样自杀"),
    "child_abuse": ("child pornography", "child sexual abuse material", "儿童色情"),
}
REFUSAL = "抱歉，我不能帮助处理这个请求。Sorry, I can't help with that request. [luoxia content filter: {category}]"
MIN_COMPACT = 10
_SPLIT = re.compile(r"[^\w]+|_+")


def _is_cjk(term: str) -> bool:
    return any("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in term)


def words(text: str) -> list[str]:
    """Normalised words, runs of single characters joined: "B O M B it" → ["bomb", "it"]."""
    out: list[str] = []
    single: list[str] = []
    for w in _SPLIT.split(normalise(text)):
        if not w:
            continue
        if len(w) == 1:
            single.append(w)
            continue
        if single:
            out.append("".join(single))
            single = []
        out.append(w)
    if single:
        out.append("".join(single))
    return out


def compact(text: str) -> str:
    return "".join(_SPLIT.split(normalise(text)))


@dataclasses.dataclass(frozen=True)
class Verdict:
    category: str
    term: str
    where: str  # "prompt" | "output"

    @property
    def refusal(self) -> str:
        return REFUSAL.format(category=self.category)

    def to_dict(self) -> dict:
        return {"blocked": self.where, "category": self.category}


class ContentFilter:
    def __init__(self, categories: dict[str, tuple[str, ...] | list[str]] | None = None):
        self.categories = {k: tuple(v) for k, v in (DEFAULT_CATEGORIES if categories is None else categories).items()}
        self._phrases: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}  # first word -> (words, category, term)
        self._cjk: list[tuple[str, str, str]] = []
        for category, terms in self.categories.items():
            for term in terms:
                if _is_cjk(term) or len(compact(term)) >= MIN_COMPACT:
                    self._cjk.append((compact(term), category, term))
                if not _is_cjk(term) and (ws := tuple(words(term))):
                    self._phrases.setdefault(ws[0], []).append((ws, category, term))

    @classmethod
    def from_file(cls, path: str | Path, defaults: bool = True) -> ContentFilter:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".toml":
                import tomllib  # Python 3.11+; use JSON on 3.10

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except (OSError, ValueError, ImportError) as e:
            raise UserFileError(f"cannot read filter terms {path}: {e}; give a JSON or TOML file "
                                '{"category": ["term", ...]}') from None
        if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(t, str) for t in v)
                                                 for v in data.values()):
            raise UserFileError(f"filter terms {path} must map each category to a list of strings")
        merged = {k: list(v) for k, v in DEFAULT_CATEGORIES.items()} if defaults else {}
        for k, v in data.items():
            merged.setdefault(k, []).extend(v)
        return cls(merged)

    def check(self, text: str, where: str = "prompt") -> Verdict | None:
        """The first category the text falls in (and log why), or None when it is clean."""
        ws = words(text)
        for i, w in enumerate(ws):
            for phrase, category, term in self._phrases.get(w, ()):
                if tuple(ws[i:i + len(phrase)]) == phrase:
                    return self._block(category, term, where)
        if self._cjk:
            flat = compact(text)
            for needle, category, term in self._cjk:
                if needle and needle in flat:
                    return self._block(category, term, where)
        return None

    def _block(self, category: str, term: str, where: str) -> Verdict:
        log.warning("content filter blocked the %s: category %s (term %r)", where, category, term)
        return Verdict(category, term, where)
