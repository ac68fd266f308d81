"""``Parallel`` and ``delayed``: the dispatch engine.

Data flow of one call (everything but the workers runs in the caller)::

    iterable of (f, args, kwargs)
      -> chunks of 128 (islice), kept as (f, [args]) when they allow it
      -> BatchedCalls of `batch_size` tasks -> backend.submit(batch, cb)
                                                   |  (worker thread/process)
      cb(future) [any thread]: results = backend.retrieve_result_callback()
                 -> SimpleQueue of finished batches
      caller: block on the queue (no polling), store results, refill the
              pipeline up to `pre_dispatch` batches in flight, then
              list mode:  extend the output list batch by batch, in order;
              generators: yield results in order ("generator") or as they
                          come ("generator_unordered").

The dispatching and the bookkeeping happen in the caller's thread; the
callback only hands the finished batch over, so backends' result threads are
never slowed by our work. Process backends pickle batches in a compact form
and run them in C in the workers (see ``_pickling``); for them a transport
session (see ``_transport``) is opened per call or per ``with`` block.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable
from itertools import islice
from queue import Empty, SimpleQueue
from typing import Any

from loky.process_executor import TerminatedWorkerError

from . import _config
from ._backend_base import (
    BatchedCalls,
    FallbackToBackend,
    ParallelBackendBase,
    _compact_calls,
)
from ._backends import (
    LokyBackend,
    MultiprocessingBackend,
    SequentialBackend,
    ThreadingBackend,
    _ProcessBackendMixin,
)
from ._config import _Default, _get_active_backend, _get_config_param
from ._config import default_parallel_config as _dpc
from ._errors import WorkerTerminatedError, eval_expr, parse_max_nbytes
from ._progress import BarReporter, VerboseReporter
from ._transport import TransportRequest, get_transport_hook

__all__ = ["Parallel", "delayed"]

_BUILTIN_BACKENDS = (LokyBackend, MultiprocessingBackend, ThreadingBackend)
_RETURN_AS = ("list", "generator", "generator_unordered")
# Upper bound of auto batches: keeps a batch's results (and the memory held
# by an ordered generator) small while amortising dispatch costs.
_MAX_AUTO_BATCH = 32768
# Generators hold up to 2 * pre_dispatch batches of results: when results
# are large, auto batches are cut to about this many pickled bytes.
_MAX_BATCH_RESULT_BYTES = 8 << 20
# Tasks taken from the input at a time while a batch is gathered.
_CHUNK = 128


def delayed(function: Callable[..., Any]) -> Callable[..., tuple]:
    """Capture a call ``function(*args, **kwargs)`` for :class:`Parallel`.

    Parameters
    ----------
    function : callable

    Returns
    -------
    callable
        Returns the tuple ``(function, args, kwargs)`` when called; it
        carries the wrapped function's name, docstring and ``__wrapped__``.

    Examples
    --------
    >>> from para_core import delayed
    >>> delayed(pow)(2, 5)
    (<built-in function pow>, (2, 5), {})
    """
    # ``delayed(f)(x)`` runs once per task: the wrapper of the last function
    # is kept (one tuple, read atomically), the rest is a plain closure call.
    last = _LAST_DELAYED
    if last[0] is function:
        return last[1]
    return _new_delayed(function)


def _new_delayed(function: Callable[..., Any]) -> Callable[..., tuple]:
    global _LAST_DELAYED

    def delayed_function(*args: Any, **kwargs: Any) -> tuple:
        return function, args, kwargs

    try:
        functools.update_wrapper(delayed_function, function)
    except (AttributeError, TypeError):  # pragma: no cover - exotic callables
        delayed_function.__wrapped__ = function  # type: ignore[attr-defined]
    if type(function) in _CACHED_TYPES:
        _LAST_DELAYED = (function, delayed_function)
    return delayed_function


def _forget_delayed() -> None:
    """Drop the cached wrapper (and the reference to its function)."""
    global _LAST_DELAYED
    _LAST_DELAYED = (None, None)


# Bound methods are new objects at each ``obj.method`` and would never hit.
_CACHED_TYPES = (types.FunctionType, types.BuiltinFunctionType)
_LAST_DELAYED: tuple[Any, Any] = (None, None)


class Parallel:
    """Run ``delayed`` calls in parallel: ``Parallel(n_jobs=2)(tasks)``.

    Same arguments and behaviour as ``joblib.Parallel``.

    Parameters
    ----------
    n_jobs : int or None
        Number of workers; -1 all CPUs, -2 all but one, ... ; None means the
        ``parallel_config`` value, else 1. Floats are truncated; 0 is an error.
    backend : str, ParallelBackendBase or None
        "loky" (default), "multiprocessing", "threading", "sequential",
        "dask" or a registered name.
    return_as : {"list", "generator", "generator_unordered"}
        A list, or a generator yielding results as they come (in input order,
        or in completion order); a generator releases each result once
        consumed and cancels the remaining work when dropped.
    verbose : int
        0 silent; above 0 prints joblib's progress lines on stderr (stdout
        from 50); above 10 reports every batch.
    timeout : float or None
        Seconds a batch may take once dispatched; then TimeoutError.
    pre_dispatch : int, "all" or str
        Batches dispatched ahead of consumption; an arithmetic expression of
        ``n_jobs`` such as ``"2 * n_jobs"``.
    batch_size : int or "auto"
        Tasks per batch; "auto" grows batches while tasks are fast.
    temp_folder, max_nbytes, mmap_mode
        Passed to the transport hook (para-memmap) of process backends;
        ``max_nbytes`` accepts bytes, None or strings like "1M".
    prefer : {"processes", "threads", None}
        Soft hint used when no backend is given.
    require : {"sharedmem", None}
        Hard constraint: "sharedmem" selects threads.
    **backend_kwargs
        Passed to the backend's ``configure``; ``progress_bar`` is taken out
        first: True shows a tqdm bar (extra ``progress``), or pass any
        tqdm-like factory called as ``factory(total=n_or_None, file=...)``.

    Raises
    ------
    ValueError
        Bad ``n_jobs`` (0 or not a number), ``return_as``, ``batch_size``,
        ``pre_dispatch``, ``prefer``, ``require``, ``max_nbytes`` or backend.
    RuntimeError
        Calling the instance while another of its calls still runs.

    Examples
    --------
    >>> from math import sqrt
    >>> from para_core import Parallel, delayed
    >>> Parallel(n_jobs=2, backend="threading")(delayed(sqrt)(i**2) for i in range(4))
    [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(
        self,
        n_jobs: Any = _dpc["n_jobs"],
        backend: Any = _dpc["backend"],
        return_as: str = "list",
        verbose: Any = _dpc["verbose"],
        timeout: float | None = None,
        pre_dispatch: Any = "2 * n_jobs",
        batch_size: Any = "auto",
        temp_folder: Any = _dpc["temp_folder"],
        max_nbytes: Any = _dpc["max_nbytes"],
        mmap_mode: Any = _dpc["mmap_mode"],
        prefer: Any = _dpc["prefer"],
        require: Any = _dpc["require"],
        **backend_kwargs: Any,
    ) -> None:
        progress = backend_kwargs.pop("progress_bar", None)
        if progress is None:
            progress = _config._current_config().get("progress_bar")
            progress = None if isinstance(progress, _Default) else progress
        self._progress_factory = progress
        self.verbose = _get_config_param(verbose, "verbose")
        self.timeout = timeout
        self.pre_dispatch = pre_dispatch
        self.temp_folder = _get_config_param(temp_folder, "temp_folder")
        self.max_nbytes = parse_max_nbytes(_get_config_param(max_nbytes, "max_nbytes"))
        self.mmap_mode = _get_config_param(mmap_mode, "mmap_mode")
        if return_as not in _RETURN_AS:
            raise ValueError(
                'Expected `return_as` parameter to be a string equal to "list",'
                f'"generator" or "generator_unordered", but got {return_as} '
                "instead."
            )
        self.return_as = return_as
        if batch_size != "auto" and not (
            isinstance(batch_size, int)
            and not isinstance(batch_size, bool)
            and batch_size > 0
        ):
            raise ValueError(
                f"batch_size must be 'auto' or a positive integer, got: {batch_size!r}"
            )
        self.batch_size = batch_size

        active, _explicit = _get_active_backend(prefer, require, verbose)
        prefer = _get_config_param(prefer, "prefer")
        require = _get_config_param(require, "require")
        level = active.nesting_level
        if backend is None or isinstance(backend, _Default):
            backend = active
            if type(backend) in _BUILTIN_BACKENDS:
                # The configured instance may be shared by concurrent calls
                # (e.g. nested calls in several threads): use a private one.
                backend = type(backend)(
                    nesting_level=backend.nesting_level,
                    inner_max_num_threads=backend.inner_max_num_threads,
                    **backend.backend_kwargs,
                )
        elif isinstance(backend, ParallelBackendBase):
            if backend.nesting_level is None:
                backend.nesting_level = level
        elif hasattr(backend, "Pool") and hasattr(backend, "Lock"):
            backend = MultiprocessingBackend(nesting_level=level, context=backend)
        elif isinstance(backend, str):
            backend = _config._make_backend(backend, nesting_level=level)
        else:
            raise ValueError(
                f"Invalid backend: {backend!r}, expected one of "
                f"{sorted(_config.BACKENDS)} or a ParallelBackendBase instance"
            )
        if require == "sharedmem" and not getattr(backend, "supports_sharedmem", False):
            raise ValueError(f"Backend {backend} does not support shared memory")

        n_jobs = _get_config_param(n_jobs, "n_jobs")
        if n_jobs is None:
            n_jobs = backend.default_n_jobs
        try:
            n_jobs = int(n_jobs)
        except (TypeError, ValueError):
            raise ValueError(
                f"n_jobs could not be converted to int, got n_jobs={n_jobs!r}"
            ) from None
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        self.n_jobs = n_jobs
        self._backend = backend
        self._backend_kwargs = {**backend_kwargs, "prefer": prefer, "require": require}
        self._in_context = False
        self._running = False
        self._transport_session: Any = None
        self._n_jobs_resolved = 1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_jobs={self.n_jobs})"

    def _print(self, msg: str) -> None:
        if not self.verbose:
            return
        writer = sys.stderr.write if self.verbose < 50 else sys.stdout.write
        writer(f"[{self}]: {msg}\n")

    def print_progress(self) -> None:
        """Called after each finished batch; override to show progress.

        Before each call the attributes ``n_completed_tasks``,
        ``n_dispatched_tasks``, ``n_dispatched_batches`` and ``n_tasks``
        (None when the input has no length) are up to date.
        """

    # -- life cycle --------------------------------------------------------
    def __enter__(self) -> Parallel:
        self._in_context = True
        self._initialize_backend()
        return self

    def __exit__(self, *exc: object) -> None:
        self._in_context = False
        self._terminate()

    def _initialize_backend(self) -> int:
        try:
            n = self._backend.configure(
                n_jobs=self.n_jobs, parallel=self, **self._backend_kwargs
            )
        except FallbackToBackend as fallback:
            self._backend = fallback.backend
            n = self._backend.configure(
                n_jobs=self.n_jobs, parallel=self, **self._backend_kwargs
            )
        if self.timeout is not None and not self._backend.supports_timeout:
            import warnings

            warnings.warn(
                f"The backend class {type(self._backend).__name__!r} does not "
                f"support timeout. You have set 'timeout={self.timeout}' in "
                "Parallel but the 'timeout' parameter will not be used.",
                stacklevel=3,
            )
        self._n_jobs_resolved = n
        hook = get_transport_hook()
        if (
            hook is not None
            and self._transport_session is None
            and isinstance(self._backend, _ProcessBackendMixin)
        ):
            self._transport_session = hook.open(
                TransportRequest(
                    backend=self._backend.name,
                    n_jobs=n,
                    temp_folder=self.temp_folder,
                    max_nbytes=self.max_nbytes,
                    mmap_mode=self.mmap_mode,
                )
            )
        return n

    def _terminate(self) -> None:
        session, self._transport_session = self._transport_session, None
        try:
            self._backend.terminate()
        finally:
            if session is not None:
                session.close()

    # -- calls -------------------------------------------------------------
    def __call__(self, iterable: Iterable[tuple]) -> Any:
        """Run the ``delayed`` calls of ``iterable``; see the class docstring."""
        with self._lock:
            if self._running:
                raise RuntimeError(
                    "This Parallel instance is already running a call; wait "
                    "for it (or exhaust its generator) before calling it again, "
                    "or create another Parallel instance."
                )
            self._running = True
        call = _Call(self, iterable)
        if self.return_as == "list":
            return call.run_list()
        gen = call.run()
        try:
            next(gen)  # set up and dispatch the first batches now, like joblib
        except BaseException:
            self._running = False
            raise
        return gen


def _ignore(*_args: Any) -> None:
    """Callback for polling backends, whose results are fetched by the caller."""


class _Call:
    """State of one ``Parallel.__call__``.

    ``run_list`` collects every result (list mode); ``run`` is the result
    generator of the two generator modes. Finished batches arrive through a
    ``SimpleQueue`` filled by the backends' callbacks.
    """

    def __init__(self, parallel: Parallel, iterable: Iterable[tuple]) -> None:
        self.p = parallel
        self.iterable = iterable
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
        self.pending: list | None = None
        self.reporters: list[Any] = []
        self.reporting = False
        self.waiting_since: dict[int, float] = {}
        self.sized = False
        self.result_bytes = 0.0  # largest pickled size of a result seen

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
            self.nested = backend.get_nested_backend()
            self.callbacks = backend.supports_retrieve_callback
            # Our process backends also tell the pickled size of results.
            self.sized = (
                isinstance(backend, _ProcessBackendMixin)
                and type(backend).retrieve_result_callback
                is _ProcessBackendMixin.retrieve_result_callback
            )
        # Subclasses overriding print_progress (a common tqdm recipe) get
        # joblib's counters before each call of it.
        self.custom_progress = type(p).print_progress is not Parallel.print_progress
        if self.custom_progress:
            p.n_completed_tasks = p.n_dispatched_tasks = p.n_dispatched_batches = 0
            p.n_tasks = self.n_tasks
        self.reporting = bool(self.reporters) or self.custom_progress
        backend.start_call()

    def _report(self) -> None:
        p = self.p
        if self.custom_progress:
            p.n_completed_tasks = self.n_completed
            p.n_dispatched_tasks = self.n_dispatched
            p.n_dispatched_batches = self.n_batches
            p.n_tasks = self.n_tasks
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

    def _next_batch(self, size: int) -> BatchedCalls | None:
        """Take up to ``size`` tasks from the input, in chunks of ``_CHUNK``.

        Chunks calling the same function without kwargs are kept as its
        argument tuples only: the ``(f, args, kwargs)`` triples die young,
        which spares the garbage collector's older generations (full
        collections otherwise cost a third of the dispatch time).
        """
        it, first = self.it, self.n_dispatched
        chunk, self.pending = self.pending, None
        if chunk is None:
            chunk = list(islice(it, min(size, _CHUNK)))
            if not chunk:
                return None
        func, single, args = _compact_calls(chunk)
        if args is None:
            if len(chunk) < size:
                chunk += islice(it, size - len(chunk))
            return BatchedCalls(chunk, self.nested, first)
        del chunk
        while len(args) < size:
            chunk = list(islice(it, min(size - len(args), _CHUNK)))
            if not chunk:
                break
            f, s, more = _compact_calls(chunk)
            if more is None or s is not single or f is not func:
                self.pending = chunk  # starts the next batch
                break
            args += more
        return BatchedCalls._from_args(func, args, single, self.nested, first)

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
        future = self.backend.submit(batch, callback=callback)
        if index in self.inflight:
            self.inflight[index] = (batch, future, start)

    def _done(self, index: int, out: Any) -> None:
        # Runs in the backend's thread: hand over, nothing more.
        nbytes = 0
        try:
            if self.sized:
                result, nbytes = self.backend._retrieve_sized(out)
            else:
                result = self.backend.retrieve_result_callback(out)
            ok = True
        except BaseException as exc:
            result, ok = exc, False
        self.finished.put((index, ok, result, time.monotonic(), nbytes))

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
                    raise TimeoutError(
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
        index, ok, result, end, nbytes = done
        batch, _future, start = self.inflight.pop(index)
        if self.waiting_since:
            self.waiting_since.pop(index, None)
        if not ok:
            self._raise(batch, result)
        n = len(batch)
        if nbytes and n:
            self.result_bytes = max(self.result_bytes, nbytes / n)
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
        return index, ok, result, time.monotonic(), 0

    def _raise(self, batch: BatchedCalls, exc: BaseException) -> None:
        if isinstance(exc, TerminatedWorkerError) and not isinstance(
            exc, WorkerTerminatedError
        ):
            raise WorkerTerminatedError(
                f"{exc}\nThe worker was running {batch.describe()} of "
                f"{self.p!r}; the remaining tasks were cancelled."
            ) from exc
        raise exc

    # cancellation and clean-up ---------------------------------------------------
    def _abort(self, exc: BaseException) -> None:
        kill = not isinstance(exc, Exception) or isinstance(
            exc, (TimeoutError, TerminatedWorkerError)
        )
        if isinstance(exc, GeneratorExit):
            kill = False
        if self.sequential or self.backend is None:
            return
        self.iterating = False
        for _batch, future, _start in list(self.inflight.values()):
            cancel = getattr(future, "cancel", None)
            if cancel is not None:
                cancel()
        if kill or not isinstance(self.backend, _ProcessBackendMixin):
            self.backend.abort_everything(ensure_ready=self.p._in_context)

    def _cleanup(self) -> None:
        p = self.p
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
    def _run_sequential(self):
        for func, args, kwargs in self.it:
            self.n_dispatched += 1
            self.n_batches += 1
            result = func(*args, **kwargs)
            self.n_completed += 1
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
            raise
        finally:
            self._cleanup()

    def _collect(self) -> list:
        # Results are appended batch by batch in input order (C-level extend).
        out: list = []
        ready = self.ready
        while True:
            self._fill()
            if not self.inflight:
                if not self.iterating:
                    return out
                continue
            self._wait()
            while self.next_yield in ready:
                out += ready.pop(self.next_yield)
                self.next_yield += 1

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
                    yield from self._run_parallel()
            for r in self.reporters:
                r.finish(self.n_completed)
        except BaseException as exc:
            self._abort(exc)
            raise
        finally:
            self._cleanup()

    def _run_parallel(self):
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
                yield from results
                del results  # released as soon as the batch is consumed
                continue
            self._fill()
            if not self.inflight and not self.iterating:
                return
            if self.inflight:
                self._wait()
