"""Format constraints as pluggable checks: poem line lengths, JSON validity, word limits.

A check is any callable `text -> CheckResult`; `make_check("max-words:50")` builds one from a spec
string (what `luoxia eval text --check` takes), and `register_check` adds a new kind:

    >>> make_check("poem:5")("床前明月光，疑是地上霜。\\n举头望明月，低头思故乡。")
    CheckResult(name='poem:5', passed=True, detail='4 lines of 5 characters')
    >>> make_check("json")('{"a": 1')
    CheckResult(name='json', passed=False, detail="invalid JSON: Expecting ',' delimiter: line 1 column 8 (char 7)")

Poem lines are split at newlines and at Chinese commas and full stops (，。！？；), and counted in
CJK characters, so "床前明月光，疑是地上霜。" is two lines of five.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable

from luoxia.core.errors import InvalidParameterError
from luoxia.eval.textsplit import CJK, words


@dataclasses.dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str


Check = Callable[[str], CheckResult]
_FACTORIES: dict[str, tuple[Callable[[str, str | None], Check], str]] = {}


def register_check(kind: str, factory: Callable[[str, str | None], Check], usage: str) -> None:
    """Make `kind[:ARG]` specs build checks with `factory(spec, arg)`; `usage` is shown in errors."""
    _FACTORIES[kind] = (factory, usage)


def make_check(spec: str) -> Check:
    kind, _, arg = spec.partition(":")
    if kind not in _FACTORIES:
        known = ", ".join(usage for _, usage in _FACTORIES.values())
        raise InvalidParameterError(f"unknown check {spec!r}; use one of: {known}")
    return _FACTORIES[kind][0](spec, arg or None)


def _int_arg(spec: str, arg: str | None, usage: str) -> int:
    try:
        value = int(arg)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"check {spec!r} needs a whole number; write it as {usage}") from None
    if value < 1:
        raise InvalidParameterError(f"check {spec!r} needs a number ≥ 1; write it as {usage}")
    return value


def poem_lines(text: str) -> list[int]:
    """CJK characters in each line of a Chinese poem (lines end at newlines and ，。！？；)."""
    lines = [s for s in re.split(r"[\n，。！？；,]", text) if s.strip()]
    return [len(re.findall(f"[{CJK}]", s)) for s in lines]


def _poem(spec: str, arg: str | None) -> Check:
    lengths = {5, 7} if arg is None else {_int_arg(spec, arg, "poem:5 or poem:7")}

    def check(text: str) -> CheckResult:
        counts = poem_lines(text)
        ok = bool(counts) and len(set(counts)) == 1 and counts[0] in lengths
        if ok:
            return CheckResult(spec, True, f"{len(counts)} lines of {counts[0]} characters")
        return CheckResult(spec, False, f"line lengths {counts}, want all {' or all '.join(map(str, sorted(lengths)))}")
    return check


def _json(spec: str, arg: str | None) -> Check:
    def check(text: str) -> CheckResult:
        body = text.strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)  # a fenced block counts as its content
        try:
            json.loads(fenced.group(1) if fenced else body)
        except json.JSONDecodeError as e:
            return CheckResult(spec, False, f"invalid JSON: {e}")
        return CheckResult(spec, True, "valid JSON")
    return check


def _word_limit(bound: str) -> Callable[[str, str | None], Check]:
    def factory(spec: str, arg: str | None) -> Check:
        limit = _int_arg(spec, arg, f"{bound}-words:N")

        def check(text: str) -> CheckResult:
            n = len(words(text))  # a CJK character counts as one word
            ok = n <= limit if bound == "max" else n >= limit
            return CheckResult(spec, ok, f"{n} words ({bound} {limit})")
        return check
    return factory


def _max_chars(spec: str, arg: str | None) -> Check:
    limit = _int_arg(spec, arg, "max-chars:N")
    return lambda text: CheckResult(spec, len(text) <= limit, f"{len(text)} characters (max {limit})")


register_check("poem", _poem, "poem[:5|:7]")
register_check("json", _json, "json")
register_check("max-words", _word_limit("max"), "max-words:N")
register_check("min-words", _word_limit("min"), "min-words:N")
register_check("max-chars", _max_chars, "max-chars:N")
