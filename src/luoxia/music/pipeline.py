"""Music generation: compose, continue a prompt, or re-harmonise a melody with a music-token model.

    model = MusicModel.load()                                     # the embedded chorale model
    piece = model.generate(bars=8, key=parse_key("D minor"), temperature=0.9, seed=0)
    piece = model.generate(prompt=read_score("intro.mid"), bars=4, seed=1)      # continue
    piece = model.generate(melody=read_score("tune.mid"), seed=2)               # keep the soprano
    save_piece(piece, "out.mid", provenance)                      # out.mid, out.wav, out.png, all labelled

The loop is the text engine's (KV cache, the same sampling processors), one piece at a time, with the
token grammar (`music.grammar`) masking what cannot come next. Past the model's context the window
slides: the header plus the most recent bars are prefilled again.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from luoxia.core.artifact import Artifact, Audio
from luoxia.core.errors import InvalidParameterError, PromptTooLongError
from luoxia.core.provenance import Provenance
from luoxia.music import tokens as T
from luoxia.music.grammar import Grammar
from luoxia.music.keys import Key, estimate_key, shift_to
from luoxia.music.render import SAMPLE_RATE, piano_roll, render_audio
from luoxia.music.score import Piece, midi_bytes
from luoxia.text import sampling
from luoxia.text.model import Transformer

WEIGHTS = Path(__file__).parent / "weights"
DEFAULT_MODEL = "chorale"
EMBEDDED = {"chorale": "four-voice chorale model trained on music21's Bach chorales (REMI-style tokens)"}
MAX_BARS = 64


@dataclasses.dataclass
class SamplingParams:
    temperature: float = 0.9  # 0: greedy
    top_k: int | None = None
    top_p: float = 1.0

    def validate(self) -> SamplingParams:
        if not 0 <= self.temperature <= 5:
            raise InvalidParameterError(f"temperature must be in [0, 5], got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise InvalidParameterError(f"top_k must be >= 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise InvalidParameterError(f"top_p must be in (0, 1], got {self.top_p}")
        return self


class MusicModel:
    """A transformer over the music vocabulary, with where it came from (for provenance)."""

    def __init__(self, model: Transformer, name: str, source: str = "", sha256: str = ""):
        self.model, self.name, self.source, self.sha256 = model.eval(), name, source, sha256

    @classmethod
    def load(cls, name_or_path: str = DEFAULT_MODEL) -> MusicModel:
        """"chorale" (embedded), a run folder of `luoxia train music`, or a registered name."""
        from luoxia.text.loader import build_model, load_bundle

        embedded = WEIGHTS / name_or_path
        bundle, _ = load_bundle(str(embedded) if "/" not in name_or_path and embedded.is_dir() else name_or_path)
        T.check_vocabulary(bundle.tokenizer)
        model = build_model(bundle, torch.device("cpu"), torch.float32)
        return cls(model, name_or_path, bundle.source, bundle.sha256)

    @property
    def context(self) -> int:
        return self.model.config.max_seq_len

    def generate(self, *, prompt: Piece | None = None, melody: Piece | None = None, bars: int = 8,
                 key: Key | None = None, time_signature: tuple[int, int] | None = None, tempo: float | None = None,
                 params: SamplingParams | None = None, seed: int = 0) -> Piece:
        """A new piece: `bars` bars from nothing or after `prompt`, or a harmonisation of `melody`."""
        params = (params or SamplingParams()).validate()
        if not 1 <= bars <= MAX_BARS:
            raise InvalidParameterError(f"bars must be 1..{MAX_BARS}, got {bars}")
        if prompt is not None and melody is not None:
            raise InvalidParameterError("give a prompt to continue or a melody to harmonise, not both")
        source = prompt if prompt is not None else melody
        ids, notes = [T.BOS], []
        if source is not None:
            if source.time_signature not in T.TIME_SIGNATURES:
                source = dataclasses.replace(source, time_signature=(4, 4))
            found = estimate_key(source)
            if key is not None:
                source = source.transpose(shift_to(found, key))
            key = key or found
            time_signature = source.time_signature
            tempo = tempo or source.tempo
        bar_ticks = Piece([], time_signature or (4, 4)).bar_ticks
        if prompt is not None:
            ids = T.encode(source, key, eos=False)
            end_bar = source.n_bars + bars
        elif melody is not None:
            top = {}
            for n in source.voice(0):
                top.setdefault(n.start, n)
            notes = [(n.start, n.pitch, n.duration) for n in top.values()]
            ids += [T.ID[key.token], T.ID[f"TS_{time_signature[0]}/{time_signature[1]}"]]
            end_bar = source.n_bars
        else:
            if key is None:  # let the model choose the key
                ids = self._sample(ids, Grammar(bar_ticks, 0), params, seed, max_tokens=2)
            else:
                ids.append(T.ID[key.token])
            ids.append(T.ID[f"TS_{time_signature[0]}/{time_signature[1]}"] if time_signature else T.ID["TS_4/4"])
            end_bar = bars
        if len(ids) > self.context - 16:
            raise PromptTooLongError(f"the prompt is {len(ids)} tokens, more than the model's context of "
                                     f"{self.context} allows; give fewer bars (about {self.context // 60} or less)")
        grammar = Grammar(bar_ticks, end_bar * bar_ticks, notes)
        for t in ids:
            grammar.advance(t)
        out = self._sample(ids, grammar, params, seed, max_tokens=end_bar * 200 + 64)
        piece, _ = T.decode(out, tempo=tempo or 90.0)
        end = end_bar * piece.bar_ticks  # notes held past the last bar line are cut there
        piece.notes = [dataclasses.replace(n, duration=min(n.duration, end - n.start)) for n in piece.notes]
        return piece

    @torch.inference_mode()
    def _sample(self, ids: list[int], grammar: Grammar, params: SamplingParams, seed: int,
                max_tokens: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        chain = sampling.build_processors(do_sample=params.temperature > 0, temperature_=params.temperature,
                                          top_k_=params.top_k, top_p_=params.top_p)
        seq = list(ids)
        window, logits = self._prefill(seq)
        while len(seq) < max_tokens:
            allowed = grammar.allowed()
            if len(allowed) == 1:
                nxt = allowed[0]
            else:
                scores = torch.full_like(logits, -math.inf)
                scores[allowed] = logits[allowed]
                scores = sampling.apply_processors(chain, torch.tensor([seq]), scores[None])
                nxt = int(sampling.pick_next(scores, params.temperature > 0, generator)[0])
            seq.append(nxt)
            grammar.advance(nxt)
            if nxt == T.EOS:
                break
            if window.n + 1 >= self.context:
                window, logits = self._prefill(_slide(seq, self.context // 2))
            else:
                logits = window.step(nxt)
        return seq

    def _prefill(self, seq: list[int]) -> tuple[_Window, torch.Tensor]:
        window = _Window(self.model, self.context)
        return window, window.prefill(seq)

    @torch.inference_mode()
    def loss(self, pieces: list[tuple[Piece, Key]]) -> float:
        """Mean next-token cross-entropy (nats) over the pieces, each in windows of the context."""
        total, count = 0.0, 0
        for piece, key in pieces:
            ids = torch.tensor(T.encode(piece, key))
            for s in range(0, max(len(ids) - 1, 1), self.context):
                chunk = ids[s:s + self.context + 1]
                if len(chunk) < 2:
                    continue
                logits = self.model(chunk[None, :-1])[0]
                total += F.cross_entropy(logits.float(), chunk[1:], reduction="sum").item()
                count += len(chunk) - 1
        return total / max(count, 1)


class _Window:
    """The KV cache of the current context window."""

    def __init__(self, model: Transformer, context: int):
        self.model, self.caches, self.n = model, model.new_caches(1, context), 0

    def prefill(self, seq: list[int]) -> torch.Tensor:
        logits = self.model(torch.tensor([seq]), self.caches, 0, last_only=True)
        self.n = len(seq)
        return logits[0, -1].float()

    def step(self, token: int) -> torch.Tensor:
        logits = self.model(torch.tensor([[token]]), self.caches, self.n)
        self.n += 1
        return logits[0, -1].float()


def _slide(seq: list[int], keep: int) -> list[int]:
    """The header (<bos> Key TS) and the tokens from the first bar line within the last `keep` tokens."""
    header = [t for t in seq[:4] if T.kind(t) in ("<bos>", "Key", "TS")]
    bars = [i for i in range(len(seq) - keep, len(seq)) if seq[i] == T.BAR]
    return header + seq[bars[0] if bars else len(seq) - keep:]


def save_piece(piece: Piece, path: str | Path, provenance: Provenance, audio: str = "auto") -> list[Path]:
    """PATH.mid, PATH.wav and PATH.png (piano roll), each written through Artifact.save with its labels."""
    path = Path(path)
    base = path.with_suffix("") if path.suffix.lower() in (".mid", ".midi") else path
    data = midi_bytes(piece)
    samples, engine = render_audio(piece, audio)
    prov = dataclasses.replace(provenance, stats={**provenance.stats, "notes": len(piece.notes),
                                                  "bars": piece.n_bars, "audio_engine": engine})
    mid = Artifact("midi", data, prov.with_content(data)).save(base.with_suffix(path.suffix or ".mid"))
    pcm = np.clip(samples, -1, 1)
    wav = Artifact("audio", Audio(pcm, SAMPLE_RATE), prov.with_content(pcm.tobytes())).save(base.with_suffix(".wav"))
    roll = piano_roll(piece)
    png = Artifact("image", roll, prov.with_content(roll.tobytes())).save(base.with_suffix(".png"))
    return [mid, wav, png]
