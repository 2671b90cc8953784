"""One generated row as its tokens arrive (`RowStream`), and the stream a caller iterates (`TextStream`).

No PyTorch here: `text.head_start` streams its first tokens through a RowStream before torch loads,
and hands the same RowStream on to `TextModel.resume`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from luoxia.text.stopping import find_stop, safe_length

if TYPE_CHECKING:
    from luoxia.text.pipeline import GenerationResult, TextModel
    from luoxia.text.prompting import PreparedPrompt
    from luoxia.text.speculative import SpeculationStats
    from luoxia.text.tokenizer import Tokenizer


class RowStream:
    """One row of a batch as its tokens arrive: detokenised, cut at stop strings, ended by EOS or its length.

    `feed` turns a token into the events it makes: a text piece (never part of a stop string or of a
    character) and, once the row ends, its GenerationResult. `streamed=False` (beam search, whose
    tokens all arrive at the end) records no first-token time. The result comes from `owner`; a row
    begun before its model loaded (`text.head_start`) has none yet, and is fed with `take`.
    """

    def __init__(self, owner: TextModel | None, row: PreparedPrompt, seed: int | None, batch_size: int,
                 streamed: bool = True, tokenizer: Tokenizer | None = None):
        self.owner, self.row, self.seed, self.batch_size, self.streamed = owner, row, seed, batch_size, streamed
        tokenizer = tokenizer or owner.tokenizer
        self.decoder = tokenizer.stream_decoder()
        self.eos = set() if row.config.ignore_eos else set(tokenizer.eos_ids)
        self.new_ids: list[int] = []
        self.text, self.shown, self.reason = "", 0, None
        self.t0, self.t_first = time.perf_counter(), None
        self.speculation: SpeculationStats | None = None  # set when the row decodes speculatively
        self.head_start = 0  # tokens it had when its model took it over (`TextModel.resume`)...
        self.resumed_at: float | None = None  # ...and when

    def feed(self, token: int) -> list[str | GenerationResult]:
        events: list[str | GenerationResult] = self.take(token)
        if self.reason:
            events.append(self.result())
        return events

    def take(self, token: int) -> list[str]:
        """`feed` without the result: the text pieces only."""
        if self.streamed:
            self.t_first = self.t_first or time.perf_counter()
        self.new_ids.append(token)
        stop = self.row.config.stop
        if token in self.eos:
            self.reason = "eos"
        else:
            self.text += self.decoder.step(token)
            cut = find_stop(self.text, stop)
            if cut >= 0:
                self.text, self.reason = self.text[:cut], "stop"
            elif len(self.new_ids) >= self.row.config.max_new_tokens:
                self.reason = "length"
        end = len(self.text) if self.reason else safe_length(self.text, stop)
        return [self._show(end)] if end > self.shown else []

    def end(self, reason: str) -> list[str | GenerationResult]:
        """End the row before its tokens did (its reader closed it): the text not yet shown, and its result."""
        self.reason = reason
        return [*([self._show(len(self.text))] if len(self.text) > self.shown else []), self.result()]

    def _show(self, end: int) -> str:
        piece, self.shown = self.text[self.shown:end], end
        return piece

    def result(self) -> GenerationResult:
        row = self.row
        return self.owner._result(row.prompt, row.ids, self.new_ids, self.text, self.reason,
                                  dataclasses.replace(row.config, seed=self.seed), self.t0, self.t_first,
                                  batch_size=self.batch_size, safety=row.safety, speculation=self.speculation,
                                  head_start=self.head_start, resumed_at=self.resumed_at)


class TextStream:
    """Iterate for text pieces as they are generated; `result` is set once iteration ends."""

    def __init__(self, pieces: Iterator[str]):
        self._pieces = pieces
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        """Stop generating now (e.g. on Ctrl-C); `result` holds what was generated so far."""
        self._pieces.close()
