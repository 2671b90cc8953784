"""Chat templates: a model's own Jinja template rendered exactly as transformers renders it.

Templates come from model files, so they are untrusted code: they run in Jinja's immutable
sandbox with the same helpers transformers offers (`raise_exception`, `strftime_now`, a `tojson`
that does not HTML-escape), with `trim_blocks` and `lstrip_blocks` on.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypedDict

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


class Message(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


def _raise_exception(message: str):
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent=None, separators=None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


@functools.lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def render_chat(template: str, messages: Sequence[Message], add_generation_prompt: bool = True, **specials) -> str:
    """Render `messages` (dicts with role and content); `specials` are bos_token, eos_token, ...

    Special tokens a model lacks (None) stay undefined, so the template renders them as "".
    """
    specials = {k: v for k, v in specials.items() if v is not None}
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"a chat message needs 'role' and 'content', got {m!r}")
    return _compile(template).render(
        messages=list(messages), add_generation_prompt=add_generation_prompt, tools=None, documents=None, **specials
    )
