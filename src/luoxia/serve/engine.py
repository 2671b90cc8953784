"""A queue in front of one text model, batching requests continuously.

Handlers `submit` a job (one or more prepared rows: `n` choices, or several prompts) and iterate
its events; one worker thread owns the model. Jobs decode as one running batch
(`text.batching.RunningBatch`) of up to `max_batch` rows, each row with its own sampling settings
(temperature, top-k/p, ...): a job that arrives while it runs joins it at the next step, instead of
waiting for its longest row to end, and a row that ends frees its place at once. A request that
fixes a seed runs in a batch of its own (static, `TextModel.stream_rows`), so the same request gives
the same text again; so do settings that count tokens from a shared prompt length
(`batching.joinable`). Jobs are taken in order: one that cannot join waits until the running batch
has drained, and joins stop meanwhile.

A reader that goes away (a client disconnecting mid-stream) cancels its job: its rows stop at the
next token, and their places go to the next jobs.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import threading
import time
from collections.abc import AsyncIterator, Sequence

from luoxia.core.openmp import release_thread_pool
from luoxia.text.batching import RunningBatch, joinable, settings_key
from luoxia.text.pipeline import GenerationResult, TextModel
from luoxia.text.prompting import PreparedPrompt
from luoxia.text.row_stream import RowStream

_DONE = object()
UNUSED_COLUMNS = 256  # a running batch drops the cache columns before its oldest row's first token beyond this


class QueueFullError(Exception):
    """More requests are waiting than the server allows."""


@dataclasses.dataclass
class Job:
    rows: list[PreparedPrompt]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = dataclasses.field(default_factory=asyncio.Queue)
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    submitted: float = dataclasses.field(default_factory=time.perf_counter)

    @functools.cached_property
    def live(self) -> list[tuple[int, PreparedPrompt]]:
        """The rows to decode (not refused by the content filter), with their index in the job."""
        return [(k, row) for k, row in enumerate(self.rows) if row.refusal is None]

    @functools.cached_property
    def key(self) -> str | None:
        """Jobs with equal keys can share a batch; None runs alone (seeded, or already refused)."""
        live = self.live
        if not live or live[0][1].config.seed is not None:
            return None
        return settings_key(live[0][1].config)

    @property
    def continuous(self) -> bool:
        """Whether the job can run in (and join) a running batch."""
        return self.key is not None and joinable(self.live[0][1].config)

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
    joined: int = 0  # rows that joined a batch already running
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
                time.sleep(self.batch_window_s)  # let requests that arrive together start together
            if first.continuous:
                self._run_continuous(first)
            else:
                self._run(self._take_batch())

    def _run_continuous(self, first: Job) -> None:
        """Decode `first` and the jobs after it as one running batch, which later jobs join between steps,
        until no row is left. Each row keeps its own sampling settings (`RunningBatch`)."""
        t0 = time.perf_counter()
        batch, seed = self.model.running_batch(first.live[0][1].config)
        active: dict[int, tuple[Job, int, RowStream]] = {}  # batch row -> (job, row in job, its stream)
        open_rows: dict[int, int] = {}  # id(job) -> rows still decoding
        jobs: list[Job] = []
        self.stats.batches += 1
        try:
            self._admit(batch, seed, active, open_rows, jobs)
            while active and not self._stopping:
                for row, token in batch.step().items():
                    job, k, stream = active[row]
                    if job.cancelled.is_set():
                        stream.reason = "interrupted"  # its reader has gone: no result
                        self.stats.cancelled += 1
                    else:
                        for event in stream.feed(token):
                            job.emit(k, event)
                        if stream.reason:
                            self.stats.tokens += len(stream.new_ids)
                    if stream.reason:
                        batch.free(row)
                        del active[row]
                        open_rows[id(job)] -= 1
                        if open_rows[id(job)] == 0:
                            job.emit(None, _DONE)
                self.stats.active = len(active)
                if not active:
                    break
                long_run = batch.cur >= UNUSED_COLUMNS and batch.unused_columns() >= UNUSED_COLUMNS
                if long_run or (not self._pending and batch.rows >= 2 * len(active)):
                    moved = batch.compact()  # a batch that has run long, or one of mostly free rows: shrink it
                    active = {moved[row]: owner for row, owner in active.items()}
                batch.advance()
                self._admit(batch, seed, active, open_rows, jobs)
        except Exception as e:  # a bug or an engine failure: every reader of the batch hears of it
            for job in jobs:
                job.emit(None, e)
        finally:
            for job in jobs:
                if open_rows.get(id(job)):
                    job.emit(None, _DONE)
            self.stats.active = 0
            self.stats.busy_s += time.perf_counter() - t0

    def _admit(self, batch: RunningBatch, seed: int | None, active: dict, open_rows: dict, jobs: list[Job]) -> None:
        """Move waiting jobs into the batch, oldest first, while it has room; stop at the first job that
        must wait (one that cannot join: seeded, or settings counted from its prompt; or too many rows),
        so no job is overtaken."""
        joining = []
        with self._wake:
            rows = len(active)
            while self._pending:
                job = self._pending[0]
                if job.cancelled.is_set():
                    self._pending.popleft()
                    job.emit(None, _DONE)
                    continue
                if not job.continuous or rows + len(job.live) > self.max_batch:
                    break
                joining.append(self._pending.popleft())
                rows += len(job.live)
        if not joining:
            return
        for job in joining:  # known to the batch first, so that a failure below reaches every one of them
            jobs.append(job)
            open_rows[id(job)] = len(job.live)
            self.stats.requests += 1
            self.stats.rows += len(job.rows)
            for k, row in enumerate(job.rows):
                if row.refusal is not None:
                    job.emit(k, row.refusal)
                    job.emit(k, self.model.refused(row))
        if active:
            self.stats.joined += sum(len(job.live) for job in joining)
        owners = [(job, k, row) for job in joining for k, row in job.live]
        slots = batch.add([row.ids for _, _, row in owners], [row.config.max_new_tokens for _, _, row in owners],
                          [row.config for _, _, row in owners])
        for slot, (job, k, row) in zip(slots, owners):
            active[slot] = (job, k, RowStream(self.model, row, seed, batch.live_rows))
        self.stats.largest_batch = max(self.stats.largest_batch, len(active))
        self.stats.active = len(active)

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
