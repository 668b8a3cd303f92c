"""Online scoring: payloads → feature vectors (the batch definition) → probability, class and reasons.

:class:`OnlineScorer` scores many payloads: the clean ones from the builder's
fast way, the rest with one feature statement (:meth:`OnlineFeatureBuilder.features_full`),
each group with one model call on the stacked array; reasons come from :func:`risk.scoring.explained.explain_rows`, the
batch scorer's own function, so a student gets the same reasons from both.
:class:`MicroBatcher` gathers the single-student requests that arrive within a
few milliseconds of each other into one such call: clean payloads are scored at
once from the builder's fast way; the rest share one feature statement, whose
fixed cost (~50 ms) makes eight students together cost little more than one.

A score carries, as batch stores it, ``raised_by`` (the class policy rule that set a
class above the model's, or None) and ``context`` (the school and grade context behind
it), both from ``explain_rows``: a teacher must see a rule-flagged child apart from a
model-flagged one, and context is about the school, not the child, so it is never
among the child's reasons.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from risk.errors import ContractError, RiskError
from risk.logs import get_logger
from risk.online.builder import OnlineFeatureBuilder, OnlineFeatures
from risk.online.payload_fast import Deferred
from risk.scoring.explained import explain_rows
from risk.scoring.settings import ReasonSettings
from risk.serve.model_holder import ModelHolder

__all__ = ["MicroBatcher", "ModelNotReady", "OnlineScorer", "Scored"]

log = get_logger(__name__)
Payload = Mapping[str, list[dict[str, Any]]]


class ModelNotReady(RiskError):
    """No model is loaded yet: the service cannot score."""


@dataclass(frozen=True)
class Scored:
    """One student's online score. ``reasons`` and ``context``: (code, en, th) each, most important first.

    ``raised_by``: the id of the class policy rule that set the class above the
    model's, or None when the model's class stands.
    """

    features: OnlineFeatures
    probability: float
    risk_class: str
    reasons: tuple[tuple[str, str, str], ...]
    model_version: str
    raised_by: str | None = None
    context: tuple[tuple[str, str, str], ...] = ()


class OnlineScorer:
    """Scores payloads with the holder's current model; one feature statement per ``as_of`` of a call."""

    def __init__(self, builder: OnlineFeatureBuilder, holder: ModelHolder, reasons: ReasonSettings,
                 on_batch: Callable[[int], None] | None = None) -> None:
        self.builder = builder
        self.holder = holder
        self.reasons = reasons
        self.on_batch = on_batch or (lambda n: None)

    def score_many(self, items: Sequence[tuple[Payload, dt.date]],
                   ready: Callable[[int, Scored | ContractError], None] | None = None, *,
                   fast: bool = True) -> list[Scored | ContractError]:
        """Score ``(payload, as_of)`` pairs; each comes back scored or with the ContractError saying why not.

        Payloads the builder's fast way decides are scored first and handed to
        ``ready(index, result)`` at once, so they do not wait for the payloads
        that need the full checks (the builder counts and logs each of those:
        ``risk_online_fallbacks_total``). ``fast=False``: every payload the full way
        (payloads the fast way has already deferred).
        Raises ModelNotReady when no model is loaded.
        """
        model = self.holder.current  # taken once: a swap during this call does not touch it
        if model is None:
            raise ModelNotReady("no model is loaded yet: the registry and the local cache had none")
        self.on_batch(len(items))
        out: list[Scored | ContractError | None] = [None] * len(items)
        by_date: dict[dt.date, list[int]] = {}
        for i, (_, as_of) in enumerate(items):
            by_date.setdefault(as_of, []).append(i)
        for as_of, rows in by_date.items():
            if fast:
                found = self.builder.features_fast([items[i][0] for i in rows], as_of)
                decided = [(i, f) for i, f in zip(rows, found, strict=True) if not isinstance(f, Deferred)]
                self._finish(model, decided, out, ready)
        for as_of, rows in by_date.items():
            rest = [i for i in rows if out[i] is None]
            if rest:
                self._finish(model, list(zip(rest, self._features([items[i][0] for i in rest], as_of), strict=True)),
                             out, ready)
        return out  # type: ignore[return-value]

    def score_clean(self, payload: Payload, as_of: dt.date) -> Scored | ContractError | Deferred:
        """One payload by the fast way alone: scored (or why not), or why it needs the full checks.

        The route calls this first, so a clean payload never waits for a micro-batch.
        Raises ModelNotReady when no model is loaded.
        """
        model = self.holder.current
        if model is None:
            raise ModelNotReady("no model is loaded yet: the registry and the local cache had none")
        (built,) = self.builder.features_fast([payload], as_of)
        if isinstance(built, Deferred):
            return built
        out: list[Scored | ContractError | None] = [None]
        self._finish(model, [(0, built)], out, None)
        return out[0]

    def _finish(self, model: Any, built: list[tuple[int, OnlineFeatures | ContractError]],
                out: list[Scored | ContractError | None], ready: Callable[[int, Any], None] | None) -> None:
        """Score the built vectors with one model call; put every result in ``out`` and tell ``ready``."""
        ok = [(i, f) for i, f in built if isinstance(f, OnlineFeatures)]
        for i, f in built:
            if not isinstance(f, OnlineFeatures):
                out[i] = f
        if ok:
            explained = explain_rows(model.bundle, np.vstack([f.values for _, f in ok]), self.reasons)
            # A scorer without rule marks or context yet: the model's class stands, no context.
            raised = getattr(explained, "raised_by", None)
            raised = [None] * len(ok) if raised is None else raised
            context = getattr(explained, "context", None) or [[] for _ in ok]
            for (i, f), p, c, reasons, rule, around in zip(ok, explained.probability, explained.risk_class,
                                                           explained.reasons, raised, context, strict=True):
                out[i] = Scored(f, float(p), str(c), tuple(reasons), model.version,
                                None if rule is None else str(rule), tuple(tuple(x) for x in around))
        if ready is not None:
            for i, _ in built:
                ready(i, out[i])

    def _features(self, payloads: list[Payload], as_of: dt.date) -> list[OnlineFeatures | ContractError]:
        """The builder's full way; when the batch fails unexpectedly, each payload alone, so one bad one fails alone."""
        try:
            return self.builder.features_full(payloads, as_of)
        except Exception as exc:  # noqa: BLE001  (isolate the payload that breaks; it is reported as unreadable)
            if len(payloads) > 1:
                return [r for p in payloads for r in self._features([p], as_of)]
            log.error("payload could not be read", error=type(exc).__name__)
            return [ContractError("the payload could not be read: check each table against the data contract")]


@dataclass
class _Job:
    payload: Payload
    as_of: dt.date
    future: Future


class MicroBatcher:
    """Single requests the fast way deferred, gathered into :meth:`OnlineScorer.score_many` calls (the full
    way alone) by worker threads.

    A worker takes the first waiting request, then whatever arrives within
    ``window_s`` (at most ``max_size`` in all), and scores them together.
    """

    def __init__(self, scorer: OnlineScorer, *, window_s: float, max_size: int, workers: int) -> None:
        self.scorer = scorer
        self.window_s = window_s
        self.max_size = max_size
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, name=f"score-batcher-{i}", daemon=True)
                         for i in range(workers)]

    def start(self) -> MicroBatcher:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)

    def submit(self, payload: Payload, as_of: dt.date) -> Future:
        """A future of the payload's :class:`Scored` (or its ContractError / ModelNotReady as exception)."""
        job = _Job(payload, as_of, Future())
        self._queue.put(job)
        return job.future

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_size:
                try:
                    job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self._queue.put(None)  # leave the stop signal for this thread's next turn
                    break
                batch.append(job)
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        def settle(i: int, result: Scored | ContractError) -> None:
            future = batch[i].future
            if future.done():
                return
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

        try:
            # Only payloads the fast way deferred come here (POST /v1/score): taking it again would cost its
            # ~1.5 ms a payload once more and count each fallback twice.
            results = self.scorer.score_many([(j.payload, j.as_of) for j in batch], ready=settle, fast=False)
        except Exception as exc:  # noqa: BLE001  (every waiting request must hear back)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        for i, result in enumerate(results):
            settle(i, result)
