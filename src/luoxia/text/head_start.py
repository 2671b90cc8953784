"""The first tokens of `luoxia generate` before PyTorch has loaded: the head start.

A fresh process spends 1.0-1.5 s importing torch before it can run a model, so a command that loads
first showed its first token after about 1.7 s. NumPy imports in a twentieth of that, and the weights
cache (`formats.cache`) already holds every converted GGUF model in float32. So, for a greedy request
on a cached model:

1. the prompt is prepared as `TextModel` prepares it (`text.prompting`: content screen, chat template,
   context window), with the cached tokenizer;
2. `NumpyTransformer` runs it on the cached weights, mapped into memory, and the first token is shown
   (about 0.5 s after the command starts);
3. then a thread loads the real model (torch, the quantized weights) while NumPy goes on token by token;
4. when it is ready the same `RowStream` (its tokens, its text, its stop strings) goes to
   `TextModel.resume`, which decodes the rest at the model's own speed.

The head start computes in float32 from the weights the quantized model was made of: at a near tie its
tokens can differ from the quantized model's, as the compiled step's can from the eager one's. The
result's stats record how many tokens it made (`head_start_tokens`); `--no-head-start` turns it off.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from luoxia.core import registry
from luoxia.core.background import Loader
from luoxia.core.errors import LuoxiaError
from luoxia.core.filehash import cached_sha256
from luoxia.safety.policy import SafetyConfig
from luoxia.text import prompting
from luoxia.text.formats import cache
from luoxia.text.formats.hf import read_tokenizer
from luoxia.text.model_config import TransformerConfig
from luoxia.text.numpy_model import NumpyTransformer
from luoxia.text.row_stream import RowStream, TextStream

if TYPE_CHECKING:
    import numpy as np

    from luoxia.text.generation_config import GenerationConfig
    from luoxia.text.pipeline import TextModel
    from luoxia.text.tokenizer import Tokenizer

# NumPy makes this many tokens (fewer if the row ends), whether torch is ready sooner or later: a fixed count
# keeps the output of a request the same from run to run. On the 2-core benchmark machine torch is ready
# after about as long as NumPy takes for 8 beside it.
TOKENS = 8


def eligible(config: GenerationConfig) -> bool:
    """Greedy with nothing that bends the logits (penalties, a watermark, a minimum length): the NumPy
    model's argmax is then the whole decoding rule, as it is the model's."""
    return (not config.sampling and config.num_beams == 1 and config.repetition_penalty == 1
            and config.frequency_penalty == 0 and config.presence_penalty == 0 and config.no_repeat_ngram_size == 0
            and config.min_new_tokens == 0 and config.watermark is None)


class HeadStart:
    """A cached model's NumPy side: its tokenizer, its config and its float32 weights (memory-mapped)."""

    def __init__(self, name: str, config: TransformerConfig, tokenizer: Tokenizer, weights: dict[str, np.ndarray]):
        self.name, self.config, self.tokenizer, self.weights = name, config, tokenizer, weights

    @classmethod
    def open(cls, name_or_path: str) -> HeadStart | None:
        """The cached conversion of a GGUF model, or None: not converted yet, a Hugging Face folder, a cache
        entry of another version or one that does not read. The command then loads the model first, and
        reports any real problem from there."""
        try:
            path = registry.resolve(name_or_path)
            if not path.is_file():
                return None
            directory = cache.cache_dir_for(cached_sha256(path))
            meta = json.loads((directory / "config.json").read_text())
            if meta.get("luoxia_cache_version") != cache.CACHE_VERSION:
                return None
            config = TransformerConfig.from_dict(meta["model"])
            tokenizer = read_tokenizer(directory)
            weights = cache.map_weights(directory / "model.safetensors")
        except (LuoxiaError, OSError, ValueError, KeyError, TypeError):
            return None
        name = name_or_path if name_or_path in registry.EMBEDDED else meta.get("name", "")
        return cls(name, config, tokenizer, weights)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.tokenizer.chat_template)

    def begin(self, prompt: str, *, chat: bool, system: str | None, truncate: bool, safety: SafetyConfig | None,
              **params) -> RowStream | None:
        """The prepared row, as `TextModel.stream` would prepare it; None when the head start does not apply
        (sampling and the like, see `eligible`) or the content filter refused the prompt."""
        rendered = prompting.chat_prompt(self.tokenizer, prompt, system) if chat else prompt
        row = prompting.prepare(self.tokenizer, safety or SafetyConfig(), self.config.max_seq_len, rendered, chat,
                                truncate, params)
        if row.refusal is not None or not eligible(row.config):
            return None
        return RowStream(None, row, None, 1, tokenizer=self.tokenizer)

    def stream(self, row: RowStream, load: Callable[[], TextModel]) -> TextStream:
        """Stream the row: its first TOKENS tokens from NumPy while `load` runs on a thread (from the first token
        on), then the loaded model's. `result` is set at the end (None if closed before the model took over)."""
        stream = TextStream(iter(()))
        stream._pieces = self._pieces(stream, row, load)
        return stream

    def _pieces(self, stream: TextStream, row: RowStream, load: Callable[[], TextModel]) -> Iterator[str]:
        from threadpoolctl import threadpool_limits

        model = NumpyTransformer(self.config, self.weights, len(row.row.ids) + TOKENS)
        loader, blas = Loader(load), None
        logits = model.forward(row.row.ids)  # on every core: nothing else runs yet
        try:
            while True:
                token = int(logits.argmax())
                yield from row.take(token)
                if len(row.new_ids) == 1:  # the first token is out: load torch beside NumPy, a core each
                    loader.start()
                    blas = threadpool_limits(limits=1, user_api="blas")
                if row.reason or len(row.new_ids) == TOKENS:
                    break
                logits = model.forward([token])
        finally:
            if blas is not None:
                blas.restore_original_limits()
        resumed = loader.result().resume(row)
        try:
            yield from resumed
        finally:
            resumed.close()
            stream.result = resumed.result
