"""A queue in front of one text model, batching requests that arrive together.

Handlers `submit` a job (one or more prepared rows: `n` choices, or several prompts) and iterate
its events; one worker thread owns the model and decodes jobs whose sampling settings match as
one left-padded batch (`TextModel.stream_rows`), up to `max_batch` rows. A request that fixes a
seed runs in a batch of its own, so the same request gives the same text again.

Batching is static: a batch runs until its last row ends, and requests that arrive meanwhile
wait for the next one. A reader that goes away (a client disconnecting mid-stream) cancels its
job: its rows stop at the next token, and a batch whose rows have all gone stops at once.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Sequence

from luoxia.core.openmp import release_thread_pool
from luoxia.text.pipeline import GenerationResult, PreparedPrompt, TextModel

_DONE = object()


class QueueFullError(Exception):
    """More requests are waiting than the server allows."""


@dataclasses.dataclass
class Job:
    rows: list[PreparedPrompt]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = dataclasses.field(default_factory=asyncio.Queue)
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    submitted: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def key(self) -> str | None:
        """Jobs with equal keys can share a batch; None runs alone (seeded, or already refused)."""
        live = [r for r in self.rows if r.refusal is None]
        if not live or live[0].config.seed is not None:
            return None
        settings = dataclasses.replace(live[0].config, max_new_tokens=1, stop=()).to_dict()
        return json.dumps(settings, sort_keys=True, default=str)

    def emit(self, row: int | None, event: object) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, (row, event))

    async def results(self) -> AsyncIterator[tuple[int, str | GenerationResult]]:
        """(row, text piece) and (row, result) events until the job ends; leaving early cancels it."""
        try:
            while True:
                row, event = await self.events.get()
                if event is _DONE:
                    return
                if isinstance(event, BaseException):
                    raise event
                yield row, event
        finally:
            self.cancelled.set()


@dataclasses.dataclass
class EngineStats:
    requests: int = 0
    rows: int = 0
    batches: int = 0
    tokens: int = 0
    cancelled: int = 0  # rows stopped because their reader went away
    busy_s: float = 0.0
    largest_batch: int = 0
    active: int = 0  # rows decoding now

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["mean_batch_rows"] = round(self.rows / self.batches, 2) if self.batches else 0
        d["busy_s"] = round(self.busy_s, 3)
        return d


class TextEngine:
    def __init__(self, model: TextModel, max_batch: int = 16, batch_window_s: float = 0.005, max_queue: int = 64):
        self.model = model
        self.max_batch, self.batch_window_s, self.max_queue = max_batch, batch_window_s, max_queue
        self.stats = EngineStats()
        self._pending: collections.deque[Job] = collections.deque()
        self._wake = threading.Condition()
        self._stopping = False
        release_thread_pool()  # the model's work moves to the worker thread (see core.openmp: 2x on 2 cores)
        self._thread = threading.Thread(target=self._work, name="luoxia-text-engine", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._pending)

    def submit(self, rows: Sequence[PreparedPrompt]) -> Job:
        job = Job(list(rows), asyncio.get_running_loop())
        with self._wake:
            if len(self._pending) >= self.max_queue:
                raise QueueFullError(f"{len(self._pending)} requests are already waiting")
            self._pending.append(job)
            self._wake.notify()
        return job

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            for job in self._pending:
                job.emit(None, _DONE)
            self._pending.clear()
            self._wake.notify()
        self._thread.join(timeout=10)

    # --- the worker thread ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._pending and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                first = self._pending[0]
            if first.key is not None and self.batch_window_s > 0:
                time.sleep(self.batch_window_s)  # let requests that arrive together share the batch
            self._run(self._take_batch())

    def _take_batch(self) -> list[Job]:
        with self._wake:
            first = self._pending.popleft()
            batch, rows = [first], len(first.rows)
            if first.key is not None:
                for job in list(self._pending):
                    if job.key == first.key and rows + len(job.rows) <= self.max_batch:
                        self._pending.remove(job)
                        batch.append(job)
                        rows += len(job.rows)
            return batch

    def _run(self, jobs: list[Job]) -> None:
        jobs = [job for job in jobs if not job.cancelled.is_set()]
        owners = [(job, k) for job in jobs for k in range(len(job.rows))]
        if not owners:
            return
        t0 = time.perf_counter()
        self.stats.requests += len(jobs)
        self.stats.rows += len(owners)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(owners))
        self.stats.active = len(owners)
        ended = 0
        try:
            rows = [row for job in jobs for row in job.rows]
            for i, event in self.model.stream_rows(rows, cancelled=lambda i: owners[i][0].cancelled.is_set()):
                job, k = owners[i]
                if isinstance(event, GenerationResult):
                    self.stats.tokens += len(event.token_ids)
                    self.stats.active -= 1
                    ended += 1
                job.emit(k, event)
            self.stats.cancelled += len(owners) - ended
        except Exception as e:  # a bug or an engine failure: every waiting reader hears of it
            for job in jobs:
                job.emit(None, e)
        finally:
            self.stats.active = 0
            self.stats.busy_s += time.perf_counter() - t0
            for job in jobs:
                job.emit(None, _DONE)
