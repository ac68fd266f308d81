"""The dispatch engine behind ``Parallel.__call__``.

Data flow of one call (everything but the workers runs in the caller)::

    _parallel.Parallel.__call__ -> _Call(...).run_list() / .run()
    iterable of (f, args, kwargs)
      -> read in one pass; runs of calls of one function without kwargs
         are kept as (f, [args]) (``_compact.take_compact``); the input's
         last run is cut in one slice per worker
      -> _batch.BatchedCalls of `batch_size` tasks
      -> backend.submit(batch, cb)       (a backend of ``backends``; loky:
           backends._packets.dumps_batch, then loky's executor)
                                                   |  (worker thread/process:
                                                   |   run_pickled_batch)
      cb(future) [any thread]: results = backend.retrieve_result_callback()
                 (our process backends: the future itself)
                 -> SimpleQueue of finished batches
      caller: block on the queue (no polling), store results, refill the
              pipeline up to `pre_dispatch` batches in flight, then
              unpickle what the process backends sent and
              list mode:  extend the output list batch by batch, in order;
              generators: yield results in order ("generator") or as they
                          come ("generator_unordered").

The dispatching and the bookkeeping happen in the caller's thread; the
callback only hands the finished batch over, so backends' result threads are
never slowed by our work (they also carry batches to the workers). Process
backends pickle batches in a compact form and run them in C in the workers
(see ``backends._packets``); for them a transport session (see ``_transport``) is
opened per call or per ``with`` block.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from itertools import islice
from queue import Empty, SimpleQueue
from typing import Any

from ._abort import stop_work
from ._batch import BatchedCalls
from ._compact import END, FULL, compact_kind, take_compact
from ._completion import BatchCompletionCallBack, get_batch_completion_callback
from ._delayed import _forget_delayed
from ._errors import (
    ParallelTimeoutError,
    WorkerTerminatedError,
    drop_retrieval_frames,
    eval_expr,
    release_frames,
)
from ._mp import TerminatedWorkerError
from ._progress import BarReporter, VerboseReporter
from .backends._base import ParallelBackendBase
from .backends._packets import load_results, packet_size
from .backends._process import _ProcessBackendMixin
from .backends._threads import SequentialBackend

# Upper bound of auto batches: keeps a batch's results (and the memory held
# by an ordered generator) small while amortising dispatch costs.
_MAX_AUTO_BATCH = 32768
# Generators hold up to 2 * pre_dispatch batches of results: when results
# are large, auto batches are cut to about this many pickled bytes.
_MAX_BATCH_RESULT_BYTES = 8 << 20
# A compact run shorter than this, cut by a task of another form, goes out
# as plain triples with the tasks after it: mixed inputs keep full batches.
_CHUNK = 128


class _Packet:
    """Pickled results of a batch, unpickled when consumed (``_loaded``)."""

    __slots__ = ("data",)

    def __init__(self, data: Any) -> None:
        self.data = data


def _loaded(results: Any) -> list:
    return load_results(results.data) if type(results) is _Packet else results


def _ignore(*_args: Any) -> None:
    """Callback for polling backends, whose results are fetched by the caller."""


class _Call:
    """State of one ``Parallel.__call__``.

    ``run_list`` collects every result (list mode); ``run`` is the result
    generator of the two generator modes. Finished batches arrive through a
    ``SimpleQueue`` filled by the backends' callbacks.
    """

    def __init__(
        self, parallel: Any, iterable: Iterable[tuple], custom_progress: bool = False
    ) -> None:
        # ``parallel``: the calling ``Parallel``; ``custom_progress``: its
        # class overrides ``print_progress``.
        self.p = parallel
        self.iterable = iterable
        self.caller: int | None = threading.get_ident()
        # Set by _setup(); None until then, so that a failure while the
        # backend is configured reaches the user unmasked.
        self.backend: ParallelBackendBase | None = None
        self.sequential = False
        self.ordered = parallel.return_as != "generator_unordered"
        # List mode keeps every result anyway: no backlog bound there.
        self.bounded = parallel.return_as != "list"
        self.finished: SimpleQueue = SimpleQueue()
        self.inflight: dict[int, tuple[BatchedCalls, Any, float]] = {}
        self.ready: dict[int, list] = {}
        self.ready_fifo: deque = deque()
        self.n_batches = 0
        self.n_dispatched = 0
        self.n_completed = 0
        self.next_yield = 0
        self.iterating = True
        self.pending: Any = END  # a task read but not yet batched
        self.split: deque = deque()  # batches cut from the input's last run
        self.reporters: list[Any] = []
        self.reporting = False
        self.waiting_since: dict[int, float] = {}
        self.sized = False
        self.result_bytes = 0.0  # largest pickled size of a result seen
        self.custom_progress = custom_progress
        # The installed BatchCompletionCallBack subclass; None for the base
        # class, whose instances would do nothing: no object per batch then.
        tracker = get_batch_completion_callback()
        self.tracker = None if tracker is BatchCompletionCallBack else tracker

    # caller-side setup -----------------------------------------------------
    def _setup(self) -> None:
        p = self.p
        if not p._in_context:
            self.n_jobs = p._initialize_backend()
        else:
            self.n_jobs = p._n_jobs_resolved
        self.backend = backend = p._backend
        self.sequential = isinstance(backend, SequentialBackend)
        self.n_tasks = len(self.iterable) if hasattr(self.iterable, "__len__") else None
        pre = p.pre_dispatch
        if pre == "all":
            self.limit = sys.maxsize
        elif isinstance(pre, str):
            value = eval_expr(pre.replace("n_jobs", str(self.n_jobs)))
            self.limit = max(int(value), 1)
        else:
            self.limit = max(int(pre), 1)
        # Ordered generators may hold finished batches until the consumer
        # reaches them: up to `limit` of those on top of `limit` in flight,
        # so one slow batch does not leave the workers idle.
        self.backlog_limit = self.limit * 2 if self.limit < sys.maxsize else self.limit
        self.it = iter(self.iterable)
        if pre == "all" and not self.sequential:
            tasks = list(self.it)
            self.n_tasks = len(tasks)
            self.it = iter(tasks)
        if p.verbose:
            self.reporters.append(
                VerboseReporter(p, self.n_tasks, self.limit if pre != "all" else 0)
            )
        if p._progress_factory:
            self.reporters.append(BarReporter(p._progress_factory, self.n_tasks))
        if not self.sequential:
            p._print(
                f"Using backend {type(backend).__name__} with {self.n_jobs} "
                "concurrent workers."
            )
            nested = backend.get_nested_backend()
            if not isinstance(nested, tuple):
                # Backends written for joblib < 0.12.6 return the backend
                # alone; joblib still accepts them.
                nested = (nested, None)
            self.nested = nested
            self.callbacks = backend.supports_retrieve_callback
            # Our process backends also tell the pickled size of results,
            # unless this one retrieves them its own way (a subclass's
            # method, or one set on the instance by its configure).
            retrieve = getattr(backend.retrieve_result_callback, "__func__", None)
            self.sized = (
                isinstance(backend, _ProcessBackendMixin)
                and retrieve is _ProcessBackendMixin.retrieve_result_callback
            )
        # Subclasses overriding print_progress (a common tqdm recipe) get
        # joblib's counters before each call of it; completion callbacks
        # may read them through their ``parallel``.
        self.counting = self.custom_progress or self.tracker is not None
        if self.counting:
            p.n_completed_tasks = p.n_dispatched_tasks = p.n_dispatched_batches = 0
            p.n_tasks = self.n_tasks
        self.reporting = bool(self.reporters) or self.counting
        backend.start_call()

    def _report(self) -> None:
        p = self.p
        if self.counting:
            p.n_completed_tasks = self.n_completed
            p.n_dispatched_tasks = self.n_dispatched
            p.n_dispatched_batches = self.n_batches
            p.n_tasks = self.n_tasks
            if self.custom_progress:
                p.print_progress()
        for r in self.reporters:
            r.batch_done(
                self.n_completed, self.n_dispatched, self.n_batches, self.iterating
            )

    # dispatch ---------------------------------------------------------------
    def _next_batch_size(self) -> int:
        size = self.p.batch_size
        if size != "auto":
            return size
        if self.limit == sys.maxsize and self.n_tasks:
            # pre_dispatch="all": everything leaves now, before any batch
            # could be timed; aim at a few batches per worker.
            return max(1, min(_MAX_AUTO_BATCH, -(-self.n_tasks // (4 * self.n_jobs))))
        size = min(self.backend.compute_batch_size(), _MAX_AUTO_BATCH)
        if self.bounded and self.result_bytes:
            size = min(size, int(_MAX_BATCH_RESULT_BYTES / self.result_bytes))
        if self.n_tasks is not None:
            # End of a call of known length: smaller batches, so that every
            # worker finishes at about the same time.
            left = self.n_tasks - self.n_dispatched
            size = min(size, max(1, left // (2 * self.n_jobs)))
        return max(size, 1)

    def _fill(self) -> None:
        inflight = self.inflight
        limit = self.limit
        backlog: Any = ()
        if self.bounded:
            backlog = self.ready if self.ordered else self.ready_fifo
        while (
            self.iterating
            and len(inflight) < limit
            and len(inflight) + len(backlog) < self.backlog_limit
        ):
            batch = self._next_batch(self._next_batch_size())
            if batch is None:
                self.iterating = False
                break
            self._submit(batch)
            # The slices of the input's last run leave together: they were
            # read as one batch, and a slice held back would end the call late.
            while self.split:
                self._submit(self.split.popleft())

    def _next_batch(self, size: int) -> BatchedCalls | None:
        """Take up to ``size`` tasks from the input.

        A run of calls of one function without kwargs is kept as its
        arguments only (``take_compact``); it ends the batch early at the
        first task that does not fit, which starts the next batch. Inputs
        that mix forms more finely than ``_CHUNK`` go as plain triples.
        """
        it, first = self.it, self.n_dispatched
        item, self.pending = self.pending, END
        if item is END:
            item = next(it, END)
            if item is END:
                return None
        kind = compact_kind(item)
        if kind is None:
            items = [item]
        else:
            f, single = kind
            args = [item[1][0] if single else item[1]]
            rest = take_compact(it, f, single, size - 1, args)
            if rest is END:
                return self._last_batches(f, args, single, first)
            if rest is FULL:
                return BatchedCalls._from_args(f, args, single, self.nested, first)
            if len(args) >= _CHUNK:
                self.pending = rest  # starts the next batch
                return BatchedCalls._from_args(f, args, single, self.nested, first)
            batch = BatchedCalls._from_args(f, args, single)
            items = batch.items
            items.append(rest)
        if len(items) < size:
            items += islice(it, size - len(items))
        return BatchedCalls(items, self.nested, first_index=first)

    def _last_batches(
        self, f: Any, args: list, single: bool, first: int
    ) -> BatchedCalls:
        # The input ran out: share its last tasks among the workers, so that
        # the call ends when one slice is done rather than the whole batch.
        pieces = min(self.n_jobs, len(args) // _CHUNK)
        if pieces < 2:
            return BatchedCalls._from_args(f, args, single, self.nested, first)
        step = -(-len(args) // pieces)
        for start in range(step, len(args), step):
            piece = args[start : start + step]
            self.split.append(
                BatchedCalls._from_args(f, piece, single, self.nested, first + start)
            )
        del args[step:]
        return BatchedCalls._from_args(f, args, single, self.nested, first)

    def _submit(self, batch: BatchedCalls) -> None:
        index = self.n_batches
        self.n_batches += 1
        self.n_dispatched += len(batch)
        start = time.monotonic()
        self.inflight[index] = (batch, None, start)
        if self.callbacks:
            callback = functools.partial(self._done, index)
        else:
            callback = _ignore
        if self.tracker is not None:
            tracker = self.tracker(time.time(), len(batch), self.p)
            tracker._forward = callback
            callback = functools.partial(self._tracked, index, tracker)
        future = self.backend.submit(batch, callback=callback)
        if self.tracker is not None:
            tracker.register_job(future)
        if index in self.inflight:
            self.inflight[index] = (batch, future, start)

    def _done(self, index: int, out: Any) -> None:
        # Runs in the backend's thread: hand over, nothing more. Our process
        # backends' results are unpickled by the caller (in _take): that
        # thread also moves batches to the workers, and would compete for
        # the GIL with the caller reading its input.
        if self.sized:
            self.finished.put((index, None, out, time.monotonic()))
            return
        try:
            result = self.backend.retrieve_result_callback(out)
        except BaseException as exc:
            # Not kept in a local: this frame may stay in the traceback.
            drop_retrieval_frames(exc, sys._getframe())
            self.finished.put((index, False, exc, time.monotonic()))
            return
        self.finished.put((index, True, result, time.monotonic()))

    def _tracked(self, index: int, tracker: Any, out: Any) -> None:
        # Runs in the backend's thread: the installed completion callback
        # first; the batch reaches the engine exactly once, even when an
        # override forgot super().__call__ or raised before it.
        try:
            tracker(out)
        except BaseException as exc:
            tracker.job = None
            forward, tracker._forward = tracker._forward, None
            if forward is None or not self.callbacks:
                raise  # the batch was handed over: the backend reports it
            self.finished.put((index, False, exc, time.monotonic()))
            return
        forward, tracker._forward = tracker._forward, None
        if forward is not None:
            forward(out)
        # As joblib: the tracker forgets its job once the batch ended (the
        # future refers back to the tracker through its callbacks).
        tracker.job = None

    def _wait(self) -> None:
        """Block until at least one batch finished, then take in every one."""
        if not self.callbacks:
            self._take(self._poll_oldest(self.p.timeout))
            return
        finished = self.finished
        timeout = self.p.timeout
        if timeout is None:
            done = finished.get()
        else:
            while True:
                # As joblib: the clock of a batch starts when the caller
                # begins to wait for it (queued batches do not age).
                oldest = next(iter(self.inflight))
                since = self.waiting_since.get(oldest)
                if since is None:
                    since = self.waiting_since[oldest] = time.monotonic()
                delay = since + timeout - time.monotonic()
                if delay <= 0:
                    raise ParallelTimeoutError(
                        f"A task of this Parallel call took more than "
                        f"timeout={timeout}s to complete."
                    )
                try:
                    done = finished.get(timeout=delay)
                    break
                except Empty:
                    continue
        self._take(done)
        while not finished.empty():
            self._take(finished.get())

    def _take(self, done: tuple) -> None:
        index, ok, result, end = done
        batch, _future, start = self.inflight.pop(index)
        if self.waiting_since:
            self.waiting_since.pop(index, None)
        n = len(batch)
        if ok is None:  # a future of our process backends
            try:
                packet = self.backend._retrieve_packet(result)
            except BaseException as exc:
                self._raise(batch, exc, _future)
            if n:
                self.result_bytes = max(self.result_bytes, packet_size(packet) / n)
            # Unpickled when consumed: the caller first refills the pipeline.
            result = _Packet(packet)
        elif not ok:
            self._raise(batch, result, _future)
        self.backend.batch_completed(n, end - start)
        self.n_completed += n
        if self.ordered:
            self.ready[index] = result
        else:
            self.ready_fifo.append(result)
        if self.reporting:
            self._report()

    def _poll_oldest(self, timeout: float | None) -> tuple:
        # Backends without callbacks: block on the oldest batch's result.
        index, (_batch, future, _start) = next(iter(self.inflight.items()))
        try:
            result, ok = self.backend.retrieve_result(future, timeout), True
        except BaseException as exc:
            result, ok = exc, False
        return index, ok, result, time.monotonic()

    def _raise(
        self, batch: BatchedCalls, exc: BaseException, future: Any = None
    ) -> None:
        if isinstance(exc, TerminatedWorkerError) and not isinstance(
            exc, WorkerTerminatedError
        ):
            # loky fails every pending batch alike: name those that ran on
            # the dead worker when the backend knows them (see _ledger).
            dead = getattr(self.backend, "dead_tokens", ())
            running = [(batch, future)]
            running += [(b, f) for b, f, _start in self.inflight.values()]
            named = [b for b, f in running if getattr(f, "para_token", 0) in dead]
            text = ", ".join(b.describe() for b in named or [batch])
            raise WorkerTerminatedError(
                f"{exc}\nThe worker was running {text} of "
                f"{self.p!r}; the remaining tasks were cancelled."
            ) from exc
        raise exc

    # cancellation and clean-up ---------------------------------------------------
    def _abort(self, exc: BaseException) -> None:
        self.p._aborting = True  # joblib's flag, read by its tests
        if self.sequential or self.backend is None:
            return
        self.iterating = False
        futures = [future for _batch, future, _start in self.inflight.values()]
        stop_work(self.backend, futures, exc, self.p._in_context)

    def _end_elsewhere(self) -> bool:
        # The generator was collected in another thread than its caller's,
        # maybe one of the backend's, which could not join itself: the call
        # ends in a thread of its own (as in joblib).
        def end() -> None:
            try:
                self._abort(GeneratorExit())
            finally:
                self._cleanup()

        caller, self.caller = self.caller, None  # the cleanup is that thread's
        try:
            threading.Thread(target=end, name="para-dropped-generator").start()
        except RuntimeError:  # no new thread at interpreter exit: end here
            self.caller = caller
            return False
        return True

    def _cleanup(self) -> None:
        p = self.p
        # The call is over: forget its tasks and results. Cancelled futures
        # may outlive it in the backend (loky keeps them until their worker
        # answers) and their callbacks refer to this object.
        self.inflight.clear()
        self.ready.clear()
        self.ready_fifo.clear()
        self.split.clear()
        while not self.finished.empty():
            self.finished.get()
        self.pending = END
        self.it = self.iterable = iter(())
        for r in self.reporters:
            if hasattr(r, "close"):
                r.close()
        try:
            if self.backend is not None:
                self.backend.stop_call()
                if p._transport_session is not None:
                    p._transport_session.end_call()
        finally:
            _forget_delayed()
            if not p._in_context:
                p._terminate()
            p._running = False

    # the three ways of handing results over ---------------------------------------
    def _sequential_tasks(self):
        # An int batch_size: read that many tasks, then run them, as joblib
        # does (the input's side effects come in that order).
        size = self.p.batch_size
        if type(size) is not int or size <= 1:
            return self.it
        it = self.it
        batches = iter(lambda: list(islice(it, size)), [])
        return (task for batch in batches for task in batch)

    def _run_sequential(self):
        tracker_cls, p = self.tracker, self.p
        for func, args, kwargs in self._sequential_tasks():
            self.n_dispatched += 1
            self.n_batches += 1
            if tracker_cls is not None:
                tracker = tracker_cls(time.time(), 1, p)
            result = func(*args, **kwargs)
            self.n_completed += 1
            if tracker_cls is not None:
                tracker([result])
            if self.reporting:
                self._report()
            yield result
        self.iterating = False

    def run_list(self) -> list:
        try:
            self._setup()
            if self.sequential:
                out = list(self._run_sequential())
            else:
                with self.backend.retrieval_context():
                    out = self._collect()
            for r in self.reporters:
                r.finish(self.n_completed)
            return out
        except BaseException as exc:
            self._abort(exc)
            release_frames(exc)
            raise
        finally:
            self._cleanup()

    def _collect(self) -> list:
        # Results are appended batch by batch in input order (C-level extend),
        # after the pipeline was refilled.
        out: list = []
        ready = self.ready
        while True:
            self._fill()
            while self.next_yield in ready:
                out += _loaded(ready.pop(self.next_yield))
                self.next_yield += 1
            if not self.inflight:
                if not self.iterating:
                    return out
                continue
            self._wait()

    def run(self):
        try:
            self._setup()
            if not self.sequential:
                self._fill()
            yield None  # primed by __call__
            if self.sequential:
                yield from self._run_sequential()
            else:
                with self.backend.retrieval_context():
                    # Inlined (not a sub-generator): each result then costs
                    # one generator resume, not two.
                    ordered = self.ordered
                    ready, ready_fifo = self.ready, self.ready_fifo
                    while True:
                        if ordered:
                            results = ready.pop(self.next_yield, None)
                            if results is not None:
                                self.next_yield += 1
                        else:
                            results = ready_fifo.popleft() if ready_fifo else None
                        if results is not None:
                            self._fill()
                            yield from _loaded(results)
                            del results  # released once the batch is consumed
                            continue
                        self._fill()
                        if not self.inflight and not self.iterating:
                            break
                        if self.inflight:
                            self._wait()
            for r in self.reporters:
                r.finish(self.n_completed)
        except GeneratorExit:
            if threading.get_ident() == self.caller or not self._end_elsewhere():
                self._abort(GeneratorExit())
            raise
        except BaseException as exc:
            self._abort(exc)
            release_frames(exc)
            raise
        finally:
            if self.caller is not None:
                self._cleanup()
