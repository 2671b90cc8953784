"""The text pipeline people use: load a model, then `generate`, `stream` or `chat`.

    model = TextModel.load("smollm2")
    result = model.generate("The quick brown fox", max_new_tokens=40)
    for piece in (s := model.stream("Tell me a story", do_sample=True, seed=0)):
        print(piece, end="")
    print(s.result.provenance)

Every call returns text plus its provenance (model and file hash, parameters, seed, counts and
timings); `result.artifact.save(path)` writes it with its AI-generated labels.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Callable, Iterator, Sequence

import torch

from luoxia.core.artifact import Artifact
from luoxia.core.device import pick_device
from luoxia.core.errors import InvalidParameterError
from luoxia.core.provenance import Provenance
from luoxia.core.registry import DEFAULT_TEXT_MODEL
from luoxia.safety.policy import SafetyConfig
from luoxia.text import int8_matmul, prompting
from luoxia.text.aot_step import AotDecodeStep, aot_decode_step, batch_rows
from luoxia.text.batching import RunningBatch
from luoxia.text.beam_search import beam_search
from luoxia.text.chat import Message
from luoxia.text.compiled import compiled_decode_step
from luoxia.text.cuda_graph import GraphedDecodeStep
from luoxia.text.draft_model import DraftModel, check_compatible
from luoxia.text.formats import cache
from luoxia.text.formats.bundle import ModelBundle
from luoxia.text.generate import decode_steps, padding_mask
from luoxia.text.generation_config import DRAFT_TOKENS, GenerationConfig
from luoxia.text.graph_bursts import GraphBursts
from luoxia.text.loader import load_model
from luoxia.text.model import Transformer
from luoxia.text.prompting import PreparedPrompt, as_text
from luoxia.text.row_stream import RowStream, TextStream
from luoxia.text.speculative import SpeculationStats, speculative_steps
from luoxia.text.tokenizer import Tokenizer


@dataclasses.dataclass
class GenerationResult:
    text: str
    token_ids: list[int]  # the new tokens, stop string and EOS included
    finish_reason: str  # "eos" | "stop" (a stop string) | "length" | "interrupted" (stream closed)
    provenance: Provenance

    @property
    def artifact(self) -> Artifact:
        return Artifact(kind="text", content=self.text, provenance=self.provenance)

    def to_dict(self) -> dict:
        return {"text": self.text, "finish_reason": self.finish_reason, "token_ids": self.token_ids,
                "provenance": self.provenance.to_dict()}


class TextModel:
    def __init__(self, model: Transformer, tokenizer: Tokenizer, bundle: ModelBundle, load_info: dict):
        self.model, self.tokenizer = model, tokenizer
        self.name, self.source, self.sha256 = bundle.name, bundle.source, bundle.sha256
        self.load_info = load_info
        self.safety = SafetyConfig()  # content filter and PII checks, on by default (see safety.policy)
        self.decode_step = None  # a compiled one-token forward (text.compiled), or None for the eager model
        self.draft: DraftModel | None = None  # speculative decoding's draft model (`use_draft`)
        # Greedy decoding, several steps per CUDA-graph replay (`text.graph_bursts`; with --compile on CUDA)
        self.bursts: GraphBursts | None = None

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_TEXT_MODEL, device: str | None = None, dtype: str | None = None,
             quant: str | None = "auto", use_cache: bool = True, compile: bool = False,
             aot: bool | None = None) -> TextModel:
        """A registry name ("smollm2"), a .gguf file or a Hugging Face folder.

        `quant` "auto" keeps a quantized GGUF's own precision on the CPU (int4 for Q4_*, int8 for
        8-bit types), or with `compile` runs it as w8a8 (see `text.quant.choose_quant`); "none" computes
        in `dtype` (float32 on CPU), which matches transformers on the same weights token for token;
        "w8a8" (int8 weights and activations) is the fastest for batches of prompts. `compile` compiles
        the one-token decode step on its first use (see `text.compiled`: 1.5-1.8x the eager int4 decode
        speed on the CPU, after a compile of about 8 s, minutes on a machine's first run). `aot` instead
        decodes through a step compiled ahead of time (`text.aot_step`: about 2x eager int4 on the CPU,
        built once per model and quantization in about a minute, two for int4, then loaded in 0.15 s); None (the
        default) uses such a step when one was built before (on the CPU, without `compile`, from the
        cache that `use_cache` allows), and False decodes eagerly.
        """
        if compile and aot:
            raise InvalidParameterError("--compile and --aot are two ways to compile the decode step; pick one")
        if aot and pick_device(device).type != "cpu":
            raise InvalidParameterError("--aot runs on the CPU; on a GPU use --compile (a CUDA graph)")
        t0 = time.perf_counter()
        model, bundle, info = load_model(name_or_path, pick_device(device), dtype, quant, use_cache=use_cache,
                                         compile=compile)
        if info["quant"] in ("w8a8", "int4") and model.tok_embeddings.weight.device.type == "cpu":
            int8_matmul.load()  # their int8 products on AMX or AVX-512 VNNI where the CPU has it: the same integers
        info["load_s"] = round(time.perf_counter() - t0, 3)
        info["compile"] = compile
        loaded = cls(model, bundle.tokenizer, bundle, info)
        if compile:
            loaded.decode_step = compiled_decode_step(model)
            if isinstance(loaded.decode_step, GraphedDecodeStep):
                loaded.bursts = GraphBursts(model, loaded.decode_step.forward)
        if aot or (aot is None and use_cache and not compile and model.tok_embeddings.weight.device.type == "cpu"):
            loaded.decode_step = aot_decode_step(model, cache.cache_dir_for(bundle.sha256), info["quant"],
                                                 build=bool(aot))
        info["aot"] = isinstance(loaded.decode_step, AotDecodeStep)
        return loaded

    def warm_up(self, batches: bool = True) -> None:
        """Compile the decode step for what requests will run, so that none waits for a compile: batch 1 (a
        graph of its own), with `batches` also a left-padded batch (one graph for every batch size), a lone
        left-padded row (a server's running batch can hold one) and speculative decoding's several-token
        checks. Four graphs, and for an int4 model a batch of BATCH_ROWS rows or more (its layers take another
        path there: `quant.takes_the_copy`); on CUDA only batch 1, the one that is graphed (`text.cuda_graph`).

        Every size here differs from the cache's fixed dimensions and from the others: Dynamo gives equal
        sizes one symbol ("duck shapes"), so a first compile that saw, say, a cache as long as the model has
        key/value heads (SmolLM2: 3) tied its length to that count, and other lengths compiled again."""
        if self.decode_step is None:
            return
        taken = {self.model.config.n_kv_heads, self.model.config.head_dim}

        def unshared(n: int, *offsets: int) -> int:  # the first m >= n whose sizes m + offset are all new
            offsets = offsets or (0,)
            while any(n + offset in taken for offset in offsets):
                n += 1
            taken.update(n + offset for offset in offsets)
            return n

        def decode(lengths: list[int], total: int) -> None:  # prompts of token 0, decoded to `total` columns
            config = GenerationConfig(max_new_tokens=total - max(lengths), ignore_eos=True)
            for _ in decode_steps(self.model, [[0] * n for n in lengths], config, [], self._pad_id(),
                                  one_token_forward=self.decode_step):
                pass

        decode([5], unshared(9))
        if self.bursts is not None:  # captures its graph (the compiled step is shared)
            for _ in self.bursts.generate([[0] * 5], 2 * self.bursts.steps + 1):
                pass
        if not batches or isinstance(self.decode_step, GraphedDecodeStep):
            return
        decode([1] + [5] * (unshared(2) - 1), unshared(9))
        if split := batch_rows(self.model):
            decode([1] + [5] * (unshared(split) - 1), unshared(9))
        batch, _ = self.running_batch(GenerationConfig())
        row = batch.add([[0] * unshared(11, 2, 3)], [1])[0]  # its padded step: a mask L + 2, a cache L + 3 long
        batch.step()
        batch.free(row)
        batch.add([[0]], [2])  # the freed row again, its prompt left-padded
        batch.step()
        batch.advance()
        for _ in range(2):  # speculative decoding: the newest token and a draft, causal, at two lengths
            self._draft_forward(unshared(2, 1, 2))  # its tokens and its cache

    @torch.inference_mode()
    def _draft_forward(self, draft: int) -> torch.Tensor:
        """One speculative-decoding forward over a prompt's cache: the newest token and `draft` more."""
        device = self.model.tok_embeddings.weight.device
        tokens = torch.zeros((1, 2 + draft), dtype=torch.long, device=device)
        caches = self.model.new_caches(1, tokens.shape[1])
        self.model(tokens[:, :1], caches, 0)
        causal = padding_mask(torch.ones_like(tokens, dtype=torch.bool), 1, tokens.shape[1])
        return (self.decode_step or self.model)(tokens[0, 1:][None], caches, 1, None, causal)

    def use_draft(self, draft: TextModel | str | None, tokens: int = DRAFT_TOKENS, **load) -> None:
        """Decode single prompts speculatively with drafts from `draft`: a cheaper model of the same tokenizer
        (`text.draft_model`), loaded already, or a name or path loaded here on this model's device with `load`'s
        options (`TextModel.load`); None turns drafting off. `tokens` is the longest draft. The text is the
        model's own (greedy: the same tokens; sampled: the same distribution). Prompt lookup, when a call asks
        for it, drafts instead; batches and beams decode without drafts."""
        if draft is None:
            self.draft = None
            return
        device = self.model.tok_embeddings.weight.device
        if isinstance(draft, str):
            draft = TextModel.load(draft, device=str(device), **load)
        if draft.model.tok_embeddings.weight.device != device:
            raise InvalidParameterError(f"the draft model is on {draft.model.tok_embeddings.weight.device} and the "
                                        f"model on {device}; load both on one device")
        check_compatible(self.model, self.tokenizer, draft.model, draft.tokenizer, draft.name)
        name = f"{draft.name} {draft.load_info.get('quant', 'none')}"
        self.draft = DraftModel(draft.model, name, draft.decode_step, tokens)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.tokenizer.chat_template)

    @property
    def context_length(self) -> int:
        return self.model.config.max_seq_len

    # --- prompts ----------------------------------------------------------------------------

    def chat_prompt(self, messages: str | Sequence[Message], system: str | None = None) -> str:
        return prompting.chat_prompt(self.tokenizer, messages, system)

    def encode_prompt(self, prompt: str, templated: bool = False) -> list[int]:
        return prompting.encode_prompt(self.tokenizer, prompt, templated)

    # --- generation --------------------------------------------------------------------------

    def generate(self, prompt: str | Sequence[str], *, chat: bool = False, system: str | None = None,
                 truncate: bool = False, **params) -> GenerationResult | list[GenerationResult]:
        """Continue `prompt` (or each of a list, batched) with the decoding `params` of GenerationConfig."""
        if isinstance(prompt, (list, tuple)):
            return self._generate_batch(list(prompt), chat=chat, system=system, truncate=truncate, **params)
        stream = self.stream(prompt, chat=chat, system=system, truncate=truncate, **params)
        for _ in stream:
            pass
        return stream.result

    def chat(self, messages: str | Sequence[Message], system: str | None = None, truncate: bool = False,
             **params) -> GenerationResult:
        """Answer a conversation (a list of {"role", "content"} messages, or one user message)."""
        stream = self.stream_chat(messages, system, truncate, **params)
        for _ in stream:
            pass
        return stream.result

    def stream_chat(self, messages: str | Sequence[Message], system: str | None = None, truncate: bool = False,
                    **params) -> TextStream:
        """`chat`, streamed: iterate for the answer's pieces."""
        return self._stream(self.chat_prompt(messages, system), True, truncate, params)

    def stream(self, prompt: str | bytes, *, chat: bool = False, system: str | None = None, truncate: bool = False,
               **params) -> TextStream:
        """Generate lazily: iterate the returned stream for text pieces (never a broken character).

        With `chat`, `prompt` is a user message put through the model's chat template.
        """
        prompt = as_text(prompt)
        if system is not None and not chat:
            raise InvalidParameterError("a system prompt needs chat mode (chat=True / --chat)")
        return self._stream(self.chat_prompt(prompt, system) if chat else prompt, chat, truncate, params)

    def _stream(self, prompt: str, templated: bool, truncate: bool, params: dict) -> TextStream:
        row = self._prepare(prompt, templated, truncate, params)
        stream = TextStream(iter(()))
        if row.refusal is not None:  # refuse: nothing is generated
            stream._pieces = self._refusal_pieces(stream, row.prompt, row.refusal, row.config, row.safety)
        else:
            config, generator = self._seeded(row.config)
            # Beams cannot stream (the first token is known only when the search ends): no first-token time.
            started = RowStream(self, dataclasses.replace(row, config=config), config.seed, 1,
                                streamed=config.num_beams == 1)
            stream._pieces = self._stream_pieces(stream, started, generator)
        return stream

    def resume(self, row: RowStream) -> TextStream:
        """Go on with a greedy row whose first tokens came before this model loaded (`text.head_start`):
        decode from its prompt and those tokens, through the same RowStream (its text, its stop strings)."""
        if row.row.config.sampling or row.row.config.num_beams > 1:
            raise InvalidParameterError("only a greedy row can be resumed; sample or search from the start")
        row.owner, row.head_start, row.resumed_at = self, len(row.new_ids), time.perf_counter()
        stream = TextStream(iter(()))
        stream._pieces = self._stream_pieces(stream, row, None)
        return stream

    def prepare(self, prompt: str | bytes | Sequence[Message], *, chat: bool = False, system: str | None = None,
                truncate: bool = False, **params) -> PreparedPrompt:
        """Screen, encode and fit one prompt (a list of messages means chat), ready for `stream_rows`."""
        if isinstance(prompt, (list, tuple)):
            return self._prepare(self.chat_prompt(prompt, system), True, truncate, params)
        prompt = as_text(prompt)
        if system is not None and not chat:
            raise InvalidParameterError("a system prompt needs chat mode (chat=True / --chat)")
        return self._prepare(self.chat_prompt(prompt, system) if chat else prompt, chat, truncate, params)

    def _prepare(self, prompt: str, templated: bool, truncate: bool, params: dict) -> PreparedPrompt:
        return prompting.prepare(self.tokenizer, self.safety, self.context_length, prompt, templated, truncate, params)

    def _refusal_pieces(self, stream: TextStream, prompt: str, refusal: str, config: GenerationConfig,
                        safety: dict) -> Iterator[str]:
        stream.result = self._refused(prompt, refusal, config, safety)
        yield refusal

    def refused(self, row: PreparedPrompt) -> GenerationResult:
        """The result of a prompt the content filter refused (its refusal as the text)."""
        return self._refused(row.prompt, row.refusal, row.config, row.safety)

    def _refused(self, prompt: str, refusal: str, config: GenerationConfig, safety: dict) -> GenerationResult:
        return self._result(prompt, [], [], refusal, "filtered", config, time.perf_counter(), None, safety=safety)

    def _seeded(self, config: GenerationConfig) -> tuple[GenerationConfig, torch.Generator | None]:
        if not config.sampling:
            return config, None
        seed = config.seed if config.seed is not None else secrets.randbits(31)  # recorded, so reproducible
        generator = torch.Generator(device=self.model.tok_embeddings.weight.device).manual_seed(seed)
        return dataclasses.replace(config, seed=seed), generator

    def _stream_pieces(self, stream: TextStream, row: RowStream, generator: torch.Generator | None) -> Iterator[str]:
        """The row's text pieces from the tokens after those it has (none, unless resumed); its result goes
        to `stream.result`."""
        if row.reason:  # it ended before this model took it over
            stream.result = row.result()
            return
        ids = row.row.ids + row.new_ids
        config = dataclasses.replace(row.row.config, max_new_tokens=row.row.config.max_new_tokens - len(row.new_ids))
        if config.num_beams > 1:
            steps = iter(beam_search(self.model, ids, config, self.tokenizer.eos_ids)[0])
        elif config.lookup or self.draft is not None:
            row.speculation = SpeculationStats()
            steps = self._speculative_steps(ids, config, generator, row.speculation)
        else:
            steps = self._one_row_steps(ids, config, generator)
        try:
            for token in steps:
                events = row.feed(token)
                if row.reason:  # the result comes last; the caller reads it from `stream.result`
                    stream.result = events.pop()
                yield from events
                if row.reason:
                    return
            *pieces, stream.result = row.end("length")  # beams that ended short of max_new_tokens, no EOS
            yield from pieces
        finally:
            if hasattr(steps, "close"):
                steps.close()
            if row.reason is None:  # closed by the caller (e.g. Ctrl-C) before the end
                stream.result = row.end("interrupted")[-1]

    def _decode(self, prompts: list[list[int]], config: GenerationConfig,
                generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        """`decode_steps`' tokens, (B,) a step: through graph bursts where they apply (greedy, no logit
        processors, bursts not in use by another generation)."""
        eos_ids, pad_id = self.tokenizer.eos_ids, self._pad_id()
        bursts = self.bursts
        if (bursts is not None and not config.sampling
                and not config.processors(eos_ids, max(len(p) for p in prompts))
                and bursts.lock.acquire(blocking=False)):
            try:
                yield from bursts.generate(prompts, config.max_new_tokens, [] if config.ignore_eos else eos_ids,
                                           pad_id)
            finally:
                bursts.lock.release()
            return
        yield from decode_steps(self.model, prompts, config, eos_ids, pad_id, generator, self.decode_step)

    def _one_row_steps(self, ids: list[int], config: GenerationConfig,
                       generator: torch.Generator | None) -> Iterator[int]:
        steps = self._decode([ids], config, generator)
        try:
            for t in steps:
                yield int(t[0])
        finally:
            steps.close()

    def _speculative_steps(self, ids: list[int], config: GenerationConfig, generator: torch.Generator | None,
                           stats: SpeculationStats) -> Iterator[int]:
        prediction = self.tokenizer.encode(config.prediction, add_special_tokens=False) if config.prediction else []
        return speculative_steps(self.model, ids, config, self.tokenizer.eos_ids, generator, self.decode_step, stats,
                                 prediction, self.draft)

    def _generate_batch(self, prompts: list[str], *, chat: bool, system: str | None, truncate: bool,
                        **params) -> list[GenerationResult]:
        config = GenerationConfig(**params).validate()
        if config.num_beams > 1:  # beams run one prompt at a time
            return [self.generate(p, chat=chat, system=system, truncate=truncate, **params) for p in prompts]
        rows = [self.prepare(p, chat=chat, system=system, truncate=truncate, **params) for p in prompts]
        results: list[GenerationResult | None] = [None] * len(rows)
        for i, event in self.stream_rows(rows):
            if isinstance(event, GenerationResult):
                results[i] = event
        return results

    def stream_rows(self, rows: Sequence[PreparedPrompt],
                    cancelled: Callable[[int], bool] = lambda i: False) -> Iterator[tuple[int, str | GenerationResult]]:
        """Decode prepared prompts as one left-padded batch, yielding `(row, text piece)` as text arrives
        and `(row, GenerationResult)` when a row ends.

        The rows share their sampling settings and seed (the first row's); each keeps its own
        `max_new_tokens` and stop strings (prompt lookup and predictions apply to a single row only). A
        refused row yields its refusal at once; a row for which `cancelled(row)` turns true stops
        without a result (its reader has gone).
        """
        live = [i for i, row in enumerate(rows) if row.refusal is None]
        for i, row in enumerate(rows):
            if row.refusal is not None:
                yield i, row.refusal
                yield i, self.refused(row)
        if not live:
            return
        longest = max(rows[i].config.max_new_tokens for i in live)
        config, generator = self._seeded(dataclasses.replace(rows[live[0]].config, max_new_tokens=longest))
        streams = {i: RowStream(self, rows[i], config.seed, len(live)) for i in live}
        if len(live) == 1 and (config.lookup or self.draft is not None):  # one row: speculative, as in `stream`
            streams[live[0]].speculation = SpeculationStats()
            steps = (torch.tensor([t]) for t in self._speculative_steps(rows[live[0]].ids, config, generator,
                                                                          streams[live[0]].speculation))
        else:
            steps = self._decode([rows[i].ids for i in live], config, generator)
        try:
            for step in steps:
                for i, token in zip(live, step.tolist()):
                    stream = streams[i]
                    if stream.reason is not None:
                        continue
                    if cancelled(i):
                        stream.reason = "interrupted"
                        continue
                    for event in stream.feed(token):
                        yield i, event
                if all(streams[i].reason for i in live):
                    return
        finally:
            steps.close()

    def running_batch(self, config: GenerationConfig) -> tuple[RunningBatch, int | None]:
        """An empty continuous batch (`text.batching`) for rows with `config`'s sampling settings, and the
        seed its random generator was given (recorded in each row's provenance)."""
        config, generator = self._seeded(config)
        return RunningBatch(self.model, config, self._pad_id(), generator, self.decode_step), config.seed

    def _pad_id(self) -> int:
        tok = self.tokenizer
        return next(i for i in (tok.pad_id, *tok.eos_ids, 0) if i is not None)

    def _result(self, prompt: str, ids: list[int], new_ids: list[int], text: str, reason: str,
                config: GenerationConfig, t0: float, t_first: float | None, batch_size: int = 1,
                safety: dict | None = None, speculation: SpeculationStats | None = None,
                head_start: int = 0, resumed_at: float | None = None) -> GenerationResult:
        t_end = time.perf_counter()
        text, safety = self.safety.screen_output(text, safety or {})
        if t_first is None:  # nothing streamed (beam search): report the overall rate
            t_first, decoded, decode_s = t_end, len(new_ids), t_end - t0
        else:
            decoded, decode_s = len(new_ids) - 1, t_end - t_first
        stats = {
            "prompt_tokens": len(ids), "new_tokens": len(new_ids), "batch_size": batch_size,
            "time_to_first_token_s": round(t_first - t0, 4),
            "decode_tokens_per_s": round(decoded * batch_size / decode_s, 2) if decode_s > 0 and decoded else None,
            "total_s": round(t_end - t0, 4), "finish_reason": reason,
            "device": str(self.model.tok_embeddings.weight.device),
            "dtype": str(self.model.tok_embeddings.weight.dtype).removeprefix("torch."),
            "quant": self.load_info.get("quant", "none"), "compiled": self.decode_step is not None,
            "aot": isinstance(self.decode_step, AotDecodeStep),
        }
        if speculation is not None:
            stats["speculation"] = speculation.to_dict()
        if head_start:  # the first tokens came from text.head_start's NumPy model; then this model's speed
            stats["head_start_tokens"] = head_start
            if len(new_ids) > head_start:  # resume() set both
                stats["tokens_per_s_after_head_start"] = round((len(new_ids) - head_start) / (t_end - resumed_at), 2)
        provenance = Provenance(model=self.name, model_source=self.source, model_sha256=self.sha256,
                                params=config.to_dict(), seed=config.seed, prompt=prompt, stats=stats, safety=safety)
        return GenerationResult(text=text, token_ids=new_ids, finish_reason=reason, provenance=provenance)

