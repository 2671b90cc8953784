"""From what a user typed to the token ids a model reads: the content screen, the chat template, encoding,
and fitting prompt + new tokens into the context window.

No PyTorch here: `luoxia generate` prepares its prompt before torch has loaded (`text.head_start`), and
`TextModel` prepares with the same functions, so both see the same ids.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from luoxia.core.errors import InputEncodingError, InvalidParameterError, PromptTooLongError
from luoxia.text.generation_config import GenerationConfig

if TYPE_CHECKING:
    from luoxia.safety.policy import SafetyConfig
    from luoxia.text.chat import Message
    from luoxia.text.tokenizer import Tokenizer


@dataclasses.dataclass
class PreparedPrompt:
    """A prompt after the safety screen, encoded and fitted to the context; or its refusal."""

    prompt: str
    ids: list[int]
    config: GenerationConfig
    safety: dict
    refusal: str | None = None  # set when the content filter refused the prompt


def as_text(prompt: str | bytes) -> str:
    if isinstance(prompt, bytes):
        try:
            return prompt.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputEncodingError(f"the prompt is not valid UTF-8 (byte {e.start}); convert it to UTF-8") from None
    return prompt


def chat_prompt(tokenizer: Tokenizer, messages: str | Sequence[Message], system: str | None = None) -> str:
    """The conversation rendered by the model's chat template, ready for the assistant's answer."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if system is not None:
        messages = [{"role": "system", "content": system}, *[m for m in messages if m["role"] != "system"]]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def encode_prompt(tokenizer: Tokenizer, prompt: str, templated: bool = False) -> list[int]:
    # A rendered chat already holds its special tokens (as transformers' apply_chat_template).
    ids = tokenizer.encode(prompt, add_special_tokens=not templated)
    if not ids:
        raise InvalidParameterError("the prompt is empty; give some text to continue")
    return ids


def fit(ids: list[int], config: GenerationConfig, truncate: bool, context: int) -> tuple[list[int], GenerationConfig]:
    """Apply max_length, and make prompt + new tokens fit the `context` window."""
    if config.max_length is not None:
        config = dataclasses.replace(config, max_new_tokens=config.max_length - len(ids), max_length=None)
        if config.max_new_tokens < 1:
            raise InvalidParameterError(
                f"max_length {config.max_new_tokens + len(ids)} leaves no room after a {len(ids)}-token prompt; "
                "raise max_length or use max_new_tokens"
            )
    if truncate and len(ids) + config.max_new_tokens > context:
        ids = ids[-max(1, context - config.max_new_tokens):]
    if len(ids) >= context:
        raise PromptTooLongError(
            f"the prompt is {len(ids)} tokens but the context window is {context}; shorten it, or truncate "
            "(--truncate / truncate=True) to drop the oldest tokens"
        )
    if len(ids) + config.max_new_tokens > context:
        config = dataclasses.replace(config, max_new_tokens=context - len(ids))
    return ids, config


def prepare(tokenizer: Tokenizer, safety: SafetyConfig, context: int, prompt: str, templated: bool, truncate: bool,
            params: dict) -> PreparedPrompt:
    """Validate `params` (GenerationConfig fields), screen the prompt (already templated when `templated`),
    encode it and fit it into the `context` window."""
    config = GenerationConfig(**params).validate()
    prompt, verdict, screened = safety.screen_prompt(prompt)
    if verdict is not None:
        return PreparedPrompt(prompt, [], config, screened, refusal=verdict.refusal)
    ids, config = fit(encode_prompt(tokenizer, prompt, templated), config, truncate, context)
    return PreparedPrompt(prompt, ids, config, screened)
