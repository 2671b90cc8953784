"""Continuous batching: rows decode together one token per step, and new rows join between steps.

A static batch (`generate.decode_steps`) runs until its last row ends, so a request that arrives
meanwhile waits for all of it. Here a request joins the running batch at the next step: its prompt
is prefilled on its own and its keys and values are written into a free row of the batch's cache,
right-aligned to the batch's current column, exactly as left padding would have placed it. The
layout is decode_steps': rows share the column index, a boolean matrix marks each row's real
tokens, positions count each row's own tokens, and the attention mask hides the rest. So a row's
tokens are those it would get in a left-padded batch (greedy: those it gets alone, up to float
rounding in batched kernels).

The cache grows when it must: to the right when a row needs more new tokens than the columns left,
to the left when a prompt is longer than the current column, by a row when no row is free. Rows
whose text has ended are freed for the next joiner; `compact` drops free rows and the columns no
live row uses any more (the engine calls it when few rows are left, or when many columns are unused).

Each row keeps its own sampling settings (temperature, top-k/p, min-p, repetition penalty, greedy or
not): the forward is shared, the logits processors run per group of rows with equal settings, so
clients that ask for different temperatures still decode in one batch. Rows share one random
generator (none: a seeded request decodes alone). Settings that count tokens from a shared prompt
length (min_new_tokens, frequency and presence penalties, no_repeat_ngram_size) cannot be joined
(`joinable`); such requests decode as a static batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import torch

from luoxia.text import sampling
from luoxia.text.generate import padding_mask
from luoxia.text.generation_config import GenerationConfig
from luoxia.text.kv_cache import KVCache
from luoxia.text.model import Transformer


def joinable(config: GenerationConfig) -> bool:
    """Whether rows with these settings can join a running batch (no processor counts from a prompt length)."""
    return (config.num_beams == 1 and not config.lookup and config.min_new_tokens == 0
            and not config.frequency_penalty and not config.presence_penalty and config.no_repeat_ngram_size == 0)


def settings_key(config: GenerationConfig) -> str:
    """Equal for configs that pick tokens alike (length limits and stop strings aside)."""
    settings = config.to_dict()
    for per_row in ("max_new_tokens", "max_length", "stop"):
        settings.pop(per_row, None)
    return json.dumps(settings, sort_keys=True, default=str)


class RunningBatch:
    """The rows of one batch: `add` prompts, then per step `step` (each live row's next token), `free`
    the rows that ended, `advance` (one forward over the rest); rows may be added before any `step`.
    `config` is the rows' settings unless `add` gives each its own."""

    def __init__(self, model: Transformer, config: GenerationConfig, pad_id: int,
                 generator: torch.Generator | None = None,
                 one_token_forward: Callable[..., torch.Tensor] | None = None):
        self.model, self.config, self.pad_id, self.generator = model, self._joinable(config), pad_id, generator
        self.step_forward = model if one_token_forward is None else one_token_forward
        self.device = model.tok_embeddings.weight.device
        self._reset()

    @staticmethod
    def _joinable(config: GenerationConfig) -> GenerationConfig:
        if not joinable(config):
            raise ValueError("these decoding settings cannot be batched continuously (see batching.joinable)")
        return config

    @torch.inference_mode()  # like decode_steps' caches: a compiled step guards on the kind of tensor
    def _reset(self) -> None:
        self.cur = 0  # the column of every live row's next token
        self.tokens = torch.zeros((0, 0), dtype=torch.long, device=self.device)
        self.real = torch.zeros((0, 0), dtype=torch.bool, device=self.device)
        self.caches: list[KVCache] = self.model.new_caches(0, 0)
        self.logits = torch.zeros((0, self.model.config.vocab_size), device=self.device)  # each row's next-token logits
        self.picked = torch.zeros(0, dtype=torch.long, device=self.device)
        self.live: list[bool] = []
        self.settings: list[str | None] = []  # each row's settings_key
        self.chains: dict[str, tuple[list, bool]] = {}  # settings_key -> (logits processors, sampled)

    @property
    def rows(self) -> int:
        return len(self.live)

    @property
    def live_rows(self) -> int:
        return sum(self.live)

    # --- joining ----------------------------------------------------------------------------------

    @torch.inference_mode()
    def add(self, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int],
            configs: Sequence[GenerationConfig] | None = None) -> list[int]:
        """Prefill `prompts` into free rows (or new ones); row i will get up to `max_new_tokens[i]` tokens
        from `step`, picked with `configs[i]` (default: the batch's config). Returns the row of each prompt."""
        keys = []
        for config in configs or [self.config] * len(prompts):
            key = settings_key(self._joinable(config))
            if key not in self.chains:
                self.chains[key] = (config.processors(), config.sampling)
            keys.append(key)
        longest = max(len(p) for p in prompts)
        left = max(0, longest - self.cur)
        self._grow_columns(left, max(self.tokens.shape[1] + left, self.cur + left + max(max_new_tokens)))
        free = [i for i, alive in enumerate(self.live) if not alive]
        self._grow_rows(len(prompts) - len(free))
        slots = [i for i, alive in enumerate(self.live) if not alive][:len(prompts)]
        rows = torch.tensor(slots, device=self.device)

        # The new rows as a left-padded batch of their own, ending at column `cur`, prefilled into fresh
        # caches and copied into their rows.
        n, cur, start = len(prompts), self.cur, self.cur - longest
        tokens = torch.full((n, cur), self.pad_id, dtype=torch.long, device=self.device)
        real = torch.zeros((n, cur), dtype=torch.bool, device=self.device)
        for i, p in enumerate(prompts):
            tokens[i, cur - len(p):] = torch.tensor(list(p), dtype=torch.long)
            real[i, cur - len(p):] = True
        caches = self.model.new_caches(n, cur)
        positions = (real[:, start:].cumsum(-1) - 1).clamp(min=0)
        logits = self.model(tokens[:, start:], caches, start, positions, padding_mask(real, start, cur), last_only=True)
        for batch_cache, new in zip(self.caches, caches):
            batch_cache.k[rows, :, :cur] = new.k
            batch_cache.v[rows, :, :cur] = new.v
        self.tokens[rows, :cur] = tokens
        self.real[rows, :cur] = real
        self.logits[rows] = logits[:, -1].to(self.logits.dtype)
        for slot, key in zip(slots, keys):
            self.live[slot], self.settings[slot] = True, key
        return slots

    def _grow_columns(self, left: int, total: int) -> None:
        """`left` more columns before the present ones (for a prompt longer than `cur`), `total` in all."""
        old = self.tokens.shape[1]
        if left == 0 and total <= old:
            return

        def widen(t: torch.Tensor, fill) -> torch.Tensor:  # (B, old, ...) at dim `at` -> total
            shape = list(t.shape)
            at = 1 if t.dim() == 2 else 2
            shape[at] = total
            out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
            out.narrow(at, left, old).copy_(t)
            return out

        self.tokens, self.real = widen(self.tokens, self.pad_id), widen(self.real, False)
        for cache in self.caches:
            cache.k, cache.v = widen(cache.k, 0), widen(cache.v, 0)
        self.cur += left

    def _grow_rows(self, n: int) -> None:
        if n <= 0:
            return

        def extend(t: torch.Tensor, fill) -> torch.Tensor:
            return torch.cat([t, t.new_full((n, *t.shape[1:]), fill)])

        self.tokens, self.real, self.logits = extend(self.tokens, self.pad_id), extend(self.real, False), \
            extend(self.logits, 0)
        self.picked = extend(self.picked, self.pad_id)
        for cache in self.caches:
            cache.k, cache.v = extend(cache.k, 0), extend(cache.v, 0)
        self.live += [False] * n
        self.settings += [None] * n

    # --- decoding ---------------------------------------------------------------------------------

    @torch.inference_mode()
    def step(self) -> dict[int, int]:
        """The next token of every live row: {row: token}."""
        live = torch.tensor(self.live, device=self.device)
        groups: dict[str, list[int]] = {}  # rows with equal settings; free rows (stale logits) in none
        for row, alive in enumerate(self.live):
            if alive:
                groups.setdefault(self.settings[row], []).append(row)
        self.chains = {key: self.chains[key] for key in groups}  # forget settings no row has any more
        self.picked = torch.full_like(live, self.pad_id, dtype=torch.long)
        for key, rows in groups.items():
            processors, sampled = self.chains[key]
            if len(rows) == len(self.live):  # every row, one setting: no gather
                tokens, logits = self.tokens[:, :self.cur], self.logits.float()
            else:
                index = torch.tensor(rows, device=self.device)
                tokens, logits = self.tokens[index, :self.cur], self.logits[index].float()
            scores = sampling.apply_processors(processors, tokens, logits)
            self.picked[rows] = sampling.pick_next(scores, sampled, self.generator)
        self.tokens[:, self.cur] = self.picked
        self.real[:, self.cur] = live
        self.cur += 1
        return {i: token for i, token in enumerate(self.picked.tolist()) if self.live[i]}

    def free(self, row: int) -> None:
        """Row `row` has ended: its slot is free for the next joiner."""
        self.live[row] = False

    @torch.inference_mode()
    def advance(self) -> None:
        """Read the picked tokens into the cache (one forward), so the next `step` can pick again."""
        if not any(self.live):
            return
        if self.cur >= self.tokens.shape[1]:
            raise RuntimeError("a row ran past the columns it asked for; add() sizes them from max_new_tokens")
        pos, mask = None, None  # every row real from column 0 (one prompt, or equal ones): plain causal
        if not bool(self.real[:, :self.cur].all()):
            pos = self.real[:, :self.cur].sum(-1, keepdim=True) - 1
            mask = padding_mask(self.real, self.cur - 1, self.cur)
        self.logits = self.step_forward(self.picked[:, None], self.caches, self.cur - 1, pos, mask)[:, -1].float()

    # --- shrinking --------------------------------------------------------------------------------

    def unused_columns(self) -> int:
        """Columns before the first token of the oldest live row: the ones `compact` drops. A batch that
        rows keep joining moves one column right per step, so these must be dropped from time to time."""
        keep = [i for i, alive in enumerate(self.live) if alive]
        if not keep:
            return self.cur
        return int(self.real[torch.tensor(keep, device=self.device), :self.cur].int().argmax(-1).min())

    @torch.inference_mode()
    def compact(self) -> dict[int, int]:
        """Drop the free rows and the columns before every live row's first token; {old row: new row}."""
        keep = [i for i, alive in enumerate(self.live) if alive]
        if not keep:
            self._reset()
            return {}
        index = torch.tensor(keep, device=self.device)
        first = self.unused_columns()
        self.tokens, self.real = self.tokens[index, first:], self.real[index, first:]
        self.logits, self.picked = self.logits[index], self.picked[index]
        self.settings = [self.settings[i] for i in keep]
        for cache in self.caches:
            cache.k, cache.v = cache.k[index, :, first:].contiguous(), cache.v[index, :, first:].contiguous()
        self.cur -= first
        self.live = [True] * len(keep)
        return {old: new for new, old in enumerate(keep)}
