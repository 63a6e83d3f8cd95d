"""The server's dynamic batcher: reviews of many requests gathered into token-capped batches."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np

from imdb_deploy.serve.config import ServeConfig
from imdb_deploy.serve.metrics import ServeMetrics
from imdb_deploy.tokenization import encode, length_sorted_batches

logger = logging.getLogger(__name__)

# Requests with more text than this (UTF-8 bytes) are tokenized on the slow lane, a thread of their own: a
# 1 MB review takes the tokenizer hundreds of milliseconds, a 64 KB request a few.
FAST_LANE_BYTES = 65_536
PROBE_REVIEW = "A fine film."  # what /health scores to prove the model answers


class InferenceError(Exception):
    """The model call for a request's reviews raised."""


@dataclass(eq=False)
class _Job:
    """One request's reviews: its future resolves to their logits once every row is filled."""

    future: asyncio.Future
    logits: np.ndarray
    remaining: int
    queued_at: float = field(default_factory=time.perf_counter)
    queue_s: float = 0.0  # until the last of its batches started
    inference_s: float = 0.0  # model time of the batches that carried its reviews


@dataclass(eq=False)
class _Entry:
    job: _Job
    row: int
    ids: list[int]


class Batcher:
    """A bounded FIFO of reviews and the one task that batches them across requests onto the model threads.

    Args:
        predictor: the model (`tokenizer`, `settings`, `encode` and `logits_from_ids` are used).
        config: batching settings.
        metrics: where queue depth and batch sizes are recorded.
    """

    def __init__(self, predictor, config: ServeConfig, metrics: ServeMetrics) -> None:
        self.predictor = predictor
        self.config = config
        self.metrics = metrics
        self.tokenizing = 0  # reviews admitted and still in a tokenizer thread
        self._queue: deque[_Entry] = deque()
        self._running = 0  # batches in the model threads
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        # Two tokenizer lanes, each one thread with a tokenizer of its own (a fast tokenizer must not be called
        # from two threads at once): short requests never wait behind a long review's tokenization.
        self._lanes = {
            "fast": (ThreadPoolExecutor(1, thread_name_prefix="imdb-deploy-tokenize"), predictor.tokenizer),
            "slow": (
                ThreadPoolExecutor(1, thread_name_prefix="imdb-deploy-tokenize-long"),
                copy.deepcopy(predictor.tokenizer),
            ),
        }
        # Batches run one at a time when a call uses every core (a batched variant: two calls would fight for
        # the cores), and `workers` at a time for a per-review variant: there the Predictor's own `workers`
        # threads run one review per call, shared by every batch, so a second batch only fills the thread the
        # first leaves idle at its end (the answers cannot change, each review is its own call).
        # --max-batch-size 1 is batching off: one review per call, one call at a time.
        per_review = predictor.batching.per_review and config.max_batch_size != 1
        self.slots = max(1, getattr(predictor, "workers", 1)) if per_review else 1
        self._model = ThreadPoolExecutor(self.slots, thread_name_prefix="imdb-deploy-model")
        # The /health probe: tokenized once here, scored on a thread of its own, never queued behind clients.
        self._probe_ids = predictor.encode([PROBE_REVIEW])
        self._probe_thread = ThreadPoolExecutor(1, thread_name_prefix="imdb-deploy-probe")
        self._task: asyncio.Task | None = None
        self._batches: set[asyncio.Task] = set()
        self._started: dict[int, float] = {}  # when each batch now in the model went in

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="imdb-deploy-batcher")

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def tokenize(self, texts: Sequence[str], settings, nbytes: int) -> tuple[list[list[int]], float]:
        """Token ids of `texts` cut by `settings`, off the event loop, and the seconds it took.

        Requests of more than FAST_LANE_BYTES go to the slow lane's thread, the rest to the fast lane's.
        """
        pool, tokenizer = self._lanes["slow" if nbytes > FAST_LANE_BYTES else "fast"]
        self.tokenizing += len(texts)
        start = time.perf_counter()
        try:
            ids = await asyncio.get_running_loop().run_in_executor(pool, encode, tokenizer, list(texts), settings)
        finally:
            self.tokenizing -= len(texts)
            self._wake.set()
        return ids, time.perf_counter() - start

    async def score(self, encoded: list[list[int]]) -> _Job:
        """Queue tokenized reviews; the job, once its future is done, holds their logits in order.

        Raises:
            InferenceError: the model call for these reviews failed.
        """
        loop = asyncio.get_running_loop()
        job = _Job(
            loop.create_future(), np.empty((len(encoded), len(self.predictor.label_names)), np.float32), len(encoded)
        )
        self._queue.extend(_Entry(job, row, ids) for row, ids in enumerate(encoded))
        self.metrics.queue.set(len(self._queue))
        self._wake.set()
        await job.future
        return job

    async def probe(self) -> np.ndarray:
        """Logits of the probe review, computed on the probe's own thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self._probe_thread, self.predictor.logits_from_ids, self._probe_ids
        )

    def _fits(self) -> int:
        """How many reviews at the front of the queue make the next batch (at least one)."""
        limit = self.config.max_batch_size or len(self._queue)
        longest = 0
        count = 0
        for entry in self._queue:
            longest = max(longest, len(entry.ids))
            if count and (longest * (count + 1) > self.config.max_batch_tokens or count >= limit):
                break
            count += 1
        return count

    async def _gather(self) -> list[_Entry]:
        """Wait for reviews, give ones still being tokenized up to max_wait_ms to join, then take a batch."""
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        deadline = time.perf_counter() + self.config.max_wait_ms / 1000
        while self.tokenizing and self._fits() == len(self._queue):
            left = deadline - time.perf_counter()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except asyncio.TimeoutError:
                break
        batch = [self._queue.popleft() for _ in range(self._fits())]
        self.metrics.queue.set(len(self._queue))
        return [entry for entry in batch if not entry.job.future.done()]  # drop answered or abandoned requests

    def _infer(self, batch: list[_Entry]) -> tuple[list[tuple[list[_Entry], np.ndarray | Exception]], float]:
        """In the model thread: logits for the batch (if it fails, each request's reviews alone) and the time."""
        start = time.perf_counter()
        try:
            outcome = [(batch, self.predictor.logits_from_ids([e.ids for e in batch]))]
        except Exception:
            self.metrics.batch_failures.inc()
            logger.exception("a batch of %d reviews failed; scoring its requests one by one", len(batch))
            by_job: dict[int, list[_Entry]] = {}
            for entry in batch:
                by_job.setdefault(id(entry.job), []).append(entry)
            outcome = []
            for entries in by_job.values():
                try:
                    outcome.append((entries, self.predictor.logits_from_ids([e.ids for e in entries])))
                except Exception as exc:
                    logger.exception("a request of %d reviews failed", len(entries))
                    outcome.append((entries, exc))
        seconds = time.perf_counter() - start
        self.metrics.batch_seconds.observe(seconds)
        return outcome, seconds

    def _record(self, batch: list[_Entry]) -> None:
        lengths = [len(e.ids) for e in batch]
        # The onnxruntime calls Predictor.logits_from_ids makes of this batch (the same grouping function).
        calls = length_sorted_batches(lengths, self.predictor.batch_size, self.predictor.max_tokens)
        self.metrics.batch_reviews.observe(len(batch))
        self.metrics.batch_tokens.observe(sum(len(call) * lengths[call[0]] for call in calls))

    async def _run(self) -> None:
        while True:
            while self._running >= self.slots:
                self._slot_free.clear()
                await self._slot_free.wait()
            batch = await self._gather()
            if not batch:
                continue
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._score_batch(batch))
            self._batches.add(task)  # a reference until it is done (asyncio keeps only weak ones)
            task.add_done_callback(self._batches.discard)

    @property
    def longest_running_s(self) -> float:
        """How long the oldest batch now in the model has been there (0 when none is)."""
        return time.perf_counter() - min(self._started.values()) if self._started else 0.0

    async def _score_batch(self, batch: list[_Entry]) -> None:
        """Run one batch in a model thread and answer its requests."""
        started = self._started[id(batch)] = time.perf_counter()
        seconds = 0.0
        try:
            self._record(batch)
            outcome, seconds = await asyncio.get_running_loop().run_in_executor(self._model, self._infer, batch)
        except Exception as exc:  # never expected: keep serving, fail only this batch's requests
            logger.exception("the batcher failed on a batch of %d reviews", len(batch))
            outcome = [(batch, exc)]
        finally:
            self._running -= 1
            del self._started[id(batch)]
            self._slot_free.set()
        for job in {id(e.job): e.job for e in batch}.values():
            job.queue_s = started - job.queued_at
            job.inference_s += seconds
        for entries, result in outcome:
            for k, entry in enumerate(entries):
                job = entry.job
                if job.future.done():
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(InferenceError(f"{type(result).__name__}: {result}"))
                    continue
                job.logits[entry.row] = result[k]
                job.remaining -= 1
                self.metrics.reviews.inc()
                if job.remaining == 0:
                    job.future.set_result(None)

    async def drain(self) -> None:
        """Return once every queued review is answered and no batch is running."""
        while self._queue or self._batches or self.tokenizing:  # a batch stays in _batches until answered
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """Drain, then stop the batcher task and the threads."""
        await self.drain()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for pool, _ in self._lanes.values():
            pool.shutdown(wait=True)
        self._model.shutdown(wait=True)
        self._probe_thread.shutdown(wait=False)  # a probe stuck in a broken model must not block the exit
