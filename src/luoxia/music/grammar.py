"""The token grammar as a decoding constraint: which tokens may come next, and which must.

The sampler asks `allowed()` before each token and calls `advance(token)` after it. Besides the
order of token families (Bar → Key → Pos → Voice → Pitch → Dur → ...; the key after each Bar is the
header's), it keeps time moving forward, voices in soprano-to-bass order within an onset, the piece
ending exactly at `end_tick` (a bar line), and, when a melody is given, forces that melody into the
soprano (re-harmonisation):

    g = Grammar(bar_ticks=16, end_tick=128, melody=[(0, 72, 4), (4, 74, 4), ...])
    for t in prompt: g.advance(t)
    ids = g.allowed()   # e.g. [Pos_0] only, then [Voice_0], [Pitch_72], [Dur_4], then the model's choice
"""

from __future__ import annotations

from collections.abc import Sequence

from luoxia.music import tokens as T

_FAMILY_IDS = {f: T.ids_of(f) for f in ("Key", "TS", "Vel", "Pos", "Voice", "Pitch", "Dur")}
_NEXT = {  # the families that may follow each family (before the time and voice rules)
    "<bos>": ("Key",), "Key": ("TS",), "TS": ("Bar",), "Bar": ("Key",), "BarKey": ("Bar", "Pos", "<eos>"),
    "Pos": ("Vel", "Voice"),
    "Vel": ("Voice",), "Voice": ("Pitch",), "Pitch": ("Dur",), "Dur": ("Voice", "Vel", "Pos", "Bar", "<eos>"),
}


class Grammar:
    def __init__(self, bar_ticks: int, end_tick: int, melody: Sequence[tuple[int, int, int]] = ()):
        self.bar_ticks, self.end_tick = bar_ticks, end_tick
        self.melody = sorted(melody)  # (start, pitch, duration) of the soprano, when it is given
        self.next_note = 0  # index of the first melody note not yet written
        self.last = "<bos>"
        self.bar, self.pos, self.last_voice = -1, -1, -1
        self.forced: list[int] = []
        self.key: int | None = None  # the header's Key token, repeated after every Bar

    @property
    def now(self) -> int:
        return self.bar * self.bar_ticks + max(self.pos, 0)

    def _melody_start(self) -> int | None:
        return self.melody[self.next_note][0] if self.next_note < len(self.melody) else None

    def advance(self, token: int) -> None:
        family = T.kind(token)
        if family == "Key":
            if self.bar >= 0:
                family = "BarKey"
            else:
                self.key = token
        elif family == "TS":
            n, d = T.value(token).split("/")
            self.bar_ticks = int(n) * 16 // int(d)
        elif family == "Bar":
            self.bar, self.pos, self.last_voice = self.bar + 1, -1, -1
        elif family == "Pos":
            self.pos, self.last_voice = int(T.value(token)), -1
            start = self._melody_start()
            if self.melody and start == self.now:
                _, pitch, duration = self.melody[self.next_note]
                pitch = min(max(pitch, T.PITCHES[0]), T.PITCHES[-1])
                self.forced = [T.ID["Voice_0"], T.ID[f"Pitch_{pitch}"],
                               T.ID[f"Dur_{min(T.DURATIONS, key=lambda x: (abs(x - duration), x))}"]]
        elif family == "Voice":
            self.last_voice = int(T.value(token))
        elif family == "Dur" and self.melody and self.last_voice == 0 and self._melody_start() == self.now:
            self.next_note += 1
        if self.forced and self.forced[0] == token:
            self.forced.pop(0)
        self.last = family

    def allowed(self) -> list[int]:
        """Ids the next token may take (one id when it is forced)."""
        if self.forced:
            return [self.forced[0]]
        if self.last == "Bar" and self.key is not None:
            return [self.key]
        ids: list[int] = []
        melody_start = self._melody_start()
        next_bar = (self.bar + 1) * self.bar_ticks
        at_end = self.bar >= 0 and next_bar >= self.end_tick
        for family in _NEXT.get(self.last, ()):
            if family == "<eos>":
                ids += [T.EOS] if at_end and melody_start is None else []
            elif family == "Bar":
                melody_waits = melody_start is not None and melody_start < next_bar
                ids += [T.BAR] if not at_end and not melody_waits else []
            elif family == "Pos":
                limit = self.bar_ticks - 1 if melody_start is None else min(self.bar_ticks - 1,
                                                                            melody_start - self.bar * self.bar_ticks)
                ids += [T.ID[f"Pos_{p}"] for p in range(self.pos + 1, limit + 1)]
            elif family in ("Voice", "Vel"):
                lowest = self.last_voice + 1
                if self.melody:
                    lowest = max(lowest, 1)  # the soprano comes from the melody only
                if lowest < 4:
                    ids += [T.ID[f"Voice_{v}"] for v in range(lowest, 4)] if family == "Voice" else _FAMILY_IDS["Vel"]
            else:
                ids += _FAMILY_IDS[family]
        return ids or [T.EOS]
