"""The text tokenizer: a `tokenizers.Tokenizer` plus the model's special tokens and chat template.

Formats build it (`formats.gguf` from GGUF metadata, `formats.hf` from `tokenizer.json`); it saves
itself as `tokenizer.json` + `tokenizer_config.json`, the layout transformers reads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer as BackendTokenizer
from tokenizers.decoders import DecodeStream

from luoxia.core import atomic
from luoxia.core.errors import InvalidParameterError
from luoxia.text.chat import Message, render_chat


class Tokenizer:
    def __init__(
        self,
        backend: BackendTokenizer,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        pad_token: str | None = None,
        unk_token: str | None = None,
        add_bos: bool = False,
        add_eos: bool = False,
        chat_template: str | None = None,
        extra_eos_tokens: Sequence[str] = (),
    ):
        self.backend = backend
        self.bos_token, self.eos_token, self.pad_token, self.unk_token = bos_token, eos_token, pad_token, unk_token
        self.add_bos, self.add_eos = add_bos, add_eos
        self.chat_template = chat_template
        self.bos_id = self._id(bos_token)
        self.pad_id = self._id(pad_token)
        # Generation stops at any of these: the EOS token plus, e.g., generation_config's extra ids.
        self.eos_ids = [i for i in (self._id(t) for t in (eos_token, *extra_eos_tokens)) if i is not None]
        self.extra_eos_tokens = list(extra_eos_tokens)

    def _id(self, token: str | None) -> int | None:
        return None if token is None else self.backend.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; special tokens written in the text (e.g. `<|im_start|>`) stay whole."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        if add_special_tokens:
            if self.add_bos and self.bos_id is not None:
                ids = [self.bos_id, *ids]
            if self.add_eos and self.eos_ids:
                ids = [*ids, self.eos_ids[0]]
        return ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def stream_decoder(self, skip_special_tokens: bool = True) -> StreamDecoder:
        return StreamDecoder(self, skip_special_tokens)

    def apply_chat_template(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        """The conversation rendered with the model's own template, as transformers renders it."""
        if not self.chat_template:
            raise InvalidParameterError("this model has no chat template; use raw completion (--raw) instead")
        specials = dict(bos_token=self.bos_token, eos_token=self.eos_token, pad_token=self.pad_token,
                        unk_token=self.unk_token)
        return render_chat(self.chat_template, messages, add_generation_prompt=add_generation_prompt, **specials)

    # --- on disk ------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write `tokenizer.json` and `tokenizer_config.json` (transformers' names and keys)."""
        directory = Path(directory)
        atomic.write_text(directory / "tokenizer.json", self.backend.to_str())
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
            "add_bos_token": self.add_bos,
            "add_eos_token": self.add_eos,
            "chat_template": self.chat_template,
            "luoxia_extra_eos_tokens": self.extra_eos_tokens,
        }
        atomic.write_text(directory / "tokenizer_config.json", json.dumps(config, ensure_ascii=False, indent=2))


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character map (the ByteLevel alphabet)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars)))


class StreamDecoder:
    """Turns token ids into text pieces one at a time, never splitting a UTF-8 character.

    A Chinese character or an emoji spread over several byte-level tokens is held back until its
    last byte arrives: `step` returns "" meanwhile.
    """

    def __init__(self, tokenizer: Tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self._stream = DecodeStream(skip_special_tokens=skip_special_tokens)

    def step(self, token_id: int) -> str:
        return self._stream.step(self.tokenizer.backend, token_id) or ""
