"""The built-in backends: sequential, threading, loky and multiprocessing.

Process backends pickle each batch in the caller (see ``_pickling``), so a
transport session can swap large objects for references, and so pickling
errors surface before the batch leaves the caller.
"""

from __future__ import annotations

import functools
import itertools
import multiprocessing as mp
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import _config, _ledger, _lifeline
from ._backend_base import (
    AutoBatchingMixin,
    BatchedCalls,
    FallbackToBackend,
    ParallelBackendBase,
)
from ._mp import TerminatedWorkerError, loky, loky_cpu_count, processes_available
from ._pickling import (
    HandOver,
    dumps_batch,
    load_results,
    pack_reducer,
    run_pickled_batch,
    session_reducer,
)
from ._streams import Streams, settle_open_streams, streams_supported

__all__ = [
    "LokyBackend",
    "MultiprocessingBackend",
    "SequentialBackend",
    "ThreadingBackend",
]


def _positive_n_jobs(n_jobs: Any) -> int:
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 in Parallel has no meaning")
    if n_jobs is None or not processes_available():
        return 1  # no processes here: no threads either, as joblib
    if n_jobs < 0:
        return max(loky_cpu_count() + 1 + n_jobs, 1)
    return n_jobs


def _in_daemon_or_worker() -> bool:
    if mp.current_process().daemon:
        return True
    return loky is not None and loky.process_executor._CURRENT_DEPTH > 0


class SequentialBackend(ParallelBackendBase):
    """Run every task in the caller, one after the other (``n_jobs=1``)."""

    uses_threads = True
    supports_sharedmem = True
    supports_retrieve_callback = False

    @property
    def supports_timeout(self) -> bool:  # type: ignore[override]
        return False

    def effective_n_jobs(self, n_jobs: Any) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        return 1

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        raise RuntimeError("SequentialBackend runs tasks inline; submit is unused.")

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        return _config.get_active_backend()


class ThreadingBackend(AutoBatchingMixin, ParallelBackendBase):
    """Run batches on a pool of threads of the caller's process."""

    supports_retrieve_callback = True
    uses_threads = True
    supports_sharedmem = True
    # Thread batches are cheap: grow them fast, keep them short.
    MIN_IDEAL_BATCH_DURATION = 0.05

    _pool: ThreadPoolExecutor | None = None

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **backend_kwargs: Any,
    ) -> None:
        # Spelled out so the signature stays joblib's despite the mixin.
        super().__init__(
            nesting_level=nesting_level,
            inner_max_num_threads=inner_max_num_threads,
            **backend_kwargs,
        )

    def effective_n_jobs(self, n_jobs: Any) -> int:
        return _positive_n_jobs(n_jobs)

    def configure(
        self, n_jobs: Any = 1, parallel: Any = None, **backend_kwargs: Any
    ) -> int:
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        if self._pool is not None and self._n_jobs != n_jobs:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._n_jobs = n_jobs
        return n_jobs

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._n_jobs, thread_name_prefix="para")
        future = self._pool.submit(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def abort_everything(self, ensure_ready: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.reset_batch_stats()


class _ProcessBackendMixin:
    """Shared by the process backends: caller-side pickling with the hook."""

    supports_retrieve_callback = True
    # A dispatch costs well under a millisecond: 50 ms batches amortise it
    # and keep the end of a call balanced (joblib aims at 200 ms).
    MIN_IDEAL_BATCH_DURATION = 0.05
    # Small batches are timed by their round trip (about a millisecond under
    # load), so a fast task's first batches look 50x too short: grow up to
    # 64x per step, or the ramp-up costs a quarter of a 100k-task call.
    MAX_GROWTH = 64
    supports_inner_max_num_threads = True
    name = "loky"

    def _process_n_jobs(
        self, n_jobs: Any, label: str, in_worker: bool, in_worker_warning: str
    ) -> int:
        """Workers for ``n_jobs``: one inside a worker or below a thread."""
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if in_worker:
            if n_jobs != 1:
                warnings.warn(in_worker_warning, stacklevel=4)
            return 1
        if not (self.in_main_thread() or self.nesting_level == 0):
            if n_jobs != 1:
                warnings.warn(
                    f"{label}-backed parallel loops cannot be nested below "
                    "threads, setting n_jobs=1",
                    stacklevel=4,
                )
            return 1
        return _positive_n_jobs(n_jobs)

    # Set once a batch of the call needed cloudpickle: the next ones go
    # straight to it instead of trying the C pickler first.
    _cloud = False

    def start_call(self) -> None:
        self._cloud = False

    # (session, its task reducer, its result reducer packed), made once for
    # all the session's batches
    _reducers: tuple[Any, Any, Any] = (None, None, None)

    def _payload(self, func: Any) -> tuple[Any, Any]:
        session = getattr(getattr(self, "parallel", None), "_transport_session", None)
        known, task_reducer, reducer = self._reducers
        if known is not session or session is None:
            task_reducer = session_reducer(session, "reduce_task_object")
            reducer = pack_reducer(session_reducer(session, "result_reducer"))
            self._reducers = (session, task_reducer, reducer)
        payload, self._cloud = dumps_batch(
            func, session, self._cloud, reduce_first=task_reducer
        )
        return payload, reducer

    def retrieve_result_callback(self, future: Any) -> Any:
        return load_results(future.result())

    @staticmethod
    def _retrieve_packet(future: Any) -> Any:
        """The batch's pickled results; the engine unpickles them when it
        needs them (``load_results``) and bounds memory by their size."""
        return future.result()


# Batches this big take the caller long enough to read that their trip to a
# worker is worth waiting for (see HandOver); smaller ones are sent while
# the caller waits for results anyway.
_HANDOVER_MIN_TASKS = 1024
# Batch tokens (see _ledger): unique in this process, never 0.
_TOKENS = itertools.count(1)
_HANDOVER_TIMEOUT = 0.005
_HANDOVER_SLEEP = 2e-5


class LokyBackend(_ProcessBackendMixin, AutoBatchingMixin, ParallelBackendBase):
    """Run batches in loky's reusable pool of worker processes (the default)."""

    _workers: Any = None

    def effective_n_jobs(self, n_jobs: Any) -> int:
        # loky workers may start their own loky pool (explicit nesting);
        # daemonic multiprocessing workers may not have children.
        return self._process_n_jobs(
            n_jobs,
            "Loky",
            mp.current_process().daemon,
            "Loky-backed parallel loops cannot be called in a multiprocessing, "
            "setting n_jobs=1",
        )

    def configure(
        self,
        n_jobs: Any = 1,
        parallel: Any = None,
        prefer: Any = None,
        require: Any = None,
        idle_worker_timeout: float | None = None,
        **executor_kwargs: Any,
    ) -> int:
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        kwargs = {**self.backend_kwargs, **executor_kwargs}
        if "timeout" in kwargs:
            raise ValueError(
                "The 'timeout' parameter is not supported by the LokyBackend. "
                "Please use the `idle_worker_timeout` parameter instead."
            )
        if idle_worker_timeout is None:
            idle_worker_timeout = kwargs.pop("idle_worker_timeout", 300)
        unknown = set(kwargs) - {"context", "initializer", "initargs", "reuse"}
        if unknown:
            raise TypeError(
                f"Unexpected keyword argument(s) for the loky backend: "
                f"{sorted(unknown)}; accepted: idle_worker_timeout, context, "
                "initializer, initargs"
            )
        # Workers end with this process, even killed (see _lifeline), and
        # stamp the batches they start (see _ledger); the wrappers compare
        # equal from call to call: loky reuses the executor.
        user = (kwargs.get("initializer"), tuple(kwargs.get("initargs", ())))
        kwargs["initializer"], kwargs["initargs"] = _lifeline.bind(
            _ledger.attach, (_ledger.path(), *user)
        )
        self.parallel = parallel
        self._n_jobs = n_jobs
        self._executor_args = dict(
            max_workers=n_jobs,
            timeout=idle_worker_timeout,
            env=self._prepare_worker_env(n_jobs=n_jobs),
            **kwargs,
        )
        self._workers = loky.get_reusable_executor(**self._executor_args)
        return n_jobs

    # Streams of the running call (Linux): see _streams.
    _streams: Any = None

    def _open_streams(self) -> Streams | None:
        """Carry the rest of the call over streams (the engine asks once a
        call proves long; their set-up costs more than a short call)."""
        if self._streams is None and self._workers is not None and streams_supported():
            try:
                self._streams = Streams(self._workers, self._n_jobs)
            except OSError:  # no room for the pipes: loky's own way
                self._streams = None
        return self._streams

    def start_call(self) -> None:
        super().start_call()
        self.dead_tokens = frozenset()
        if streams_supported():
            settle_open_streams()

    def stop_call(self) -> None:
        self._close_streams()

    def _close_streams(self) -> None:
        if self._streams is not None:
            self._streams.close()
            self._streams = None

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        payload, reducer = self._payload(func)
        if self._streams is not None and self._streams.open:
            return self._streams.submit(payload, reducer, callback)
        handover = None
        if type(func) is BatchedCalls and len(func) >= _HANDOVER_MIN_TASKS:
            payload = handover = HandOver(payload)
        token = next(_TOKENS)
        future = self._workers.submit(run_pickled_batch, payload, reducer, token)
        future.para_token = token
        future.add_done_callback(self._note_death)
        if callback is not None:
            future.add_done_callback(callback)
        # Bounded: a full call queue (a large pre_dispatch) or a busy manager
        # thread must not hold the caller for long. Once pickled, the batch
        # is written in two system calls (header, then payload) and the
        # feeder needs the GIL in between: a short sleep lets it have it
        # (without, one big batch in three waited a switch interval).
        if handover is not None and handover.sent.wait(_HANDOVER_TIMEOUT):
            time.sleep(_HANDOVER_SLEEP)
        return future

    # Tokens of the batches that ran on a worker that died (see _ledger).
    dead_tokens: frozenset = frozenset()

    def _note_death(self, future: Any) -> None:
        # In loky's thread, as it fails the pending futures of a dead worker:
        # the dead worker is reaped, the others not yet killed.
        if not self.dead_tokens and isinstance(
            future._exception, TerminatedWorkerError
        ):
            self.dead_tokens = frozenset(_ledger.dead_tokens())

    def abort_everything(self, ensure_ready: bool = True) -> None:
        self._close_streams()
        if self._workers is not None:
            self._workers.shutdown(wait=True, kill_workers=True)
            self._workers = None
        if ensure_ready:
            self._workers = loky.get_reusable_executor(**self._executor_args)

    def terminate(self) -> None:
        # Workers stay alive (reusable executor) for the next call.
        self._close_streams()
        self._workers = None
        self.reset_batch_stats()


class _PoolFuture:
    """Small future filled by ``multiprocessing.pool`` callbacks."""

    __slots__ = ("_ok", "_value")

    def result(self, timeout: float | None = None) -> Any:
        if not self._ok:
            raise self._value
        return self._value

    def cancel(self) -> bool:
        return False


class MultiprocessingBackend(
    _ProcessBackendMixin, AutoBatchingMixin, ParallelBackendBase
):
    """Run batches in a ``multiprocessing.Pool`` created for each call."""

    name = "multiprocessing"
    _pool: Any = None

    def effective_n_jobs(self, n_jobs: Any) -> int:
        return self._process_n_jobs(
            n_jobs,
            "Multiprocessing",
            _in_daemon_or_worker(),
            "Multiprocessing-backed parallel loops cannot be nested, setting n_jobs=1",
        )

    def configure(
        self,
        n_jobs: Any = 1,
        parallel: Any = None,
        prefer: Any = None,
        require: Any = None,
        **pool_kwargs: Any,
    ) -> int:
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        kwargs = {**self.backend_kwargs, **pool_kwargs}
        context = kwargs.pop("context", None) or mp.get_context()
        env = self._prepare_worker_env(n_jobs)
        # The user's initializer runs after ours, in the same call; the
        # workers end with this process, even killed (see _lifeline).
        initargs = (env, kwargs.pop("initializer", None), kwargs.pop("initargs", ()))
        remove: tuple = ()
        if context.get_start_method() == "forkserver":
            # The fork server's socket folder (pymp-*): only the caller's
            # exit removes it, so a killed caller's workers do.
            from multiprocessing import util

            remove = (util.get_temp_dir(),)
        initializer, initargs = _lifeline.bind(_set_env, initargs, remove)
        self._pool = context.Pool(
            n_jobs, initializer=initializer, initargs=initargs, **kwargs
        )
        self.parallel = parallel
        return n_jobs

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        payload, reducer = self._payload(func)
        fut = _PoolFuture()
        self._pool.apply_async(
            run_pickled_batch,
            (payload, reducer),
            callback=functools.partial(_pool_done, callback, fut, True),
            error_callback=functools.partial(_pool_done, callback, fut, False),
        )
        return fut

    def abort_everything(self, ensure_ready: bool = True) -> None:
        self.terminate()
        if ensure_ready and getattr(self, "parallel", None) is not None:
            self.configure(
                n_jobs=self.parallel._n_jobs_resolved, parallel=self.parallel
            )

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self.reset_batch_stats()


def _pool_done(
    callback: Callable[[Any], Any] | None, fut: _PoolFuture, ok: bool, value: Any
) -> None:
    fut._ok, fut._value = ok, value
    if callback is not None:
        callback(fut)


def _set_env(
    env: dict[str, str],
    initializer: Callable[..., Any] | None = None,
    initargs: Any = (),
) -> None:
    """Pool initializer: cap native thread pools in this worker, then run the
    user's ``initializer(*initargs)``."""
    import os

    os.environ.update(env)
    # Forked workers may have loaded BLAS/OpenMP already, before the
    # variables above could act: cap the live pools too when we can.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=int(env["OMP_NUM_THREADS"]))
    if initializer is not None:
        initializer(*initargs)


_config.BACKENDS.update(
    {
        "loky": LokyBackend,
        "multiprocessing": MultiprocessingBackend,
        "threading": ThreadingBackend,
        "sequential": SequentialBackend,
    }
)
