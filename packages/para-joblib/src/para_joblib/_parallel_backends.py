"""Same names as ``joblib._parallel_backends``: the backend classes.

Client libraries subclass these (ray's ``RayBackend(MultiprocessingBackend)``,
joblib-spark's ``ParallelBackendBase, AutoBatchingMixin`` backend) and get
joblib's calling protocol from para_core's ``Parallel`` (see
``para_core.ParallelBackendBase``). All but one are para_core's classes.

``MultiprocessingBackend`` is joblib's: once a client replaced
``PicklingPool.__bases__`` (ray does), it builds the pool of each call as
``para_joblib.pool.MemmappingPool(n_jobs, **configure_kwargs)``, so that the
client's pool is used, with the keyword arguments the client passed to
``configure`` (``ray_remote_args``), and the batch itself is handed to that
pool's ``apply_async``, as joblib does. Until then it is para_core's backend
(a process pool whose batches are pickled once in the caller, large arrays
through shared memory).

It is also the class registered under the name "multiprocessing" once
para_joblib's parallel API is first used (:func:`register_joblib_backends`):
the backend ``parallel_config(backend="multiprocessing")`` activates is an
instance of the class a joblib user imports from here.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import para_core
from para_core import (
    AutoBatchingMixin,
    FallbackToBackend,
    LokyBackend,
    ParallelBackendBase,
    SequentialBackend,
    ThreadingBackend,
)

__all__ = [
    "AutoBatchingMixin",
    "FallbackToBackend",
    "LokyBackend",
    "MultiprocessingBackend",
    "ParallelBackendBase",
    "SequentialBackend",
    "ThreadingBackend",
]


class _PoolResult:
    """Future-like result of a batch sent to a client's pool."""

    __slots__ = ("_ok", "_value")

    def __init__(self) -> None:
        self._ok = False
        self._value: Any = None

    def result(self, timeout: float | None = None) -> Any:
        if not self._ok:
            raise self._value
        return self._value

    def cancel(self) -> bool:
        return False


class _CapturingCall:
    """A batch as handed to a client's pool: its exception returns as a value.

    A client's pool may wrap a task's exception in its own (ray's pool raises
    ``PoolTaskError``); caught in the worker and carried back as a result,
    the task's own exception reaches the caller, with the worker's traceback
    as its ``__cause__``, as on joblib.
    """

    __slots__ = ("func",)

    def __init__(self, func: Callable[[], Any]) -> None:
        self.func = func

    def __call__(self) -> Any:
        try:
            return self.func()
        except BaseException as exc:
            # Imported here: multiprocessing.pool needs _multiprocessing,
            # which some platforms lack (this module must import there).
            from multiprocessing.pool import ExceptionWithTraceback

            return _RaisedInWorker(ExceptionWithTraceback(exc, exc.__traceback__))


class _RaisedInWorker:
    """Marks a result that is a task's exception (an ExceptionWithTraceback)."""

    __slots__ = ("wrapped",)

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def exception(self) -> BaseException:
        # Unpickled in another process, the stdlib wrapper has become the
        # exception itself (the remote traceback as its cause); a pool of
        # threads hands over the wrapper as it was: rebuild it the same way.
        if isinstance(self.wrapped, BaseException):
            return self.wrapped
        rebuild, args = self.wrapped.__reduce__()
        return rebuild(*args)


def _settle(
    callback: Callable[[Any], Any] | None, fut: _PoolResult, ok: bool, value: Any
) -> None:
    if ok and type(value) is _RaisedInWorker:
        ok, value = False, value.exception()
    fut._ok, fut._value = ok, value
    if callback is not None:
        callback(fut)


class MultiprocessingBackend(para_core.MultiprocessingBackend):
    """joblib's multiprocessing backend: a ``MemmappingPool`` for each call.

    Parameters
    ----------
    nesting_level : int, optional
        How deep in nested ``Parallel`` calls this backend runs (0 at top).
    inner_max_num_threads : int, optional
        Accepted for joblib compatibility.
    **backend_kwargs
        Passed to the pool (joblib: ``MemmappingPool(n_jobs, **kwargs)``).

    Examples
    --------
    >>> from para_joblib import Parallel, delayed, parallel_config
    >>> from para_joblib._parallel_backends import MultiprocessingBackend
    >>> with parallel_config(backend=MultiprocessingBackend(), n_jobs=2):
    ...     Parallel()(delayed(abs)(-i) for i in range(3))
    [0, 1, 2]
    """

    # Keyword arguments of the last configure, reused to rebuild the pool
    # after an error (joblib's abort_everything calls configure again).
    _configure_kwargs: dict = {}
    _foreign = False
    # Instances hold only their arguments: para_core's Parallel gives each
    # call its own copy of a configured one, as for its own classes (two
    # calls under one parallel_config do not share a pool).
    _para_private_copy = True

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **memmappingpool_args: Any,
    ) -> int:
        """Build this call's pool and return its number of workers."""
        from . import _pools

        # Looked up now: a client may have rebased PicklingPool since.
        self._foreign = not _pools._own_base()
        if not self._foreign:
            # para_core's engine takes the results of its own pools as they
            # come (pickled), when this method is not replaced (see below).
            self.__dict__.pop("retrieve_result_callback", None)
            return super().configure(
                n_jobs, parallel, prefer, require, **memmappingpool_args
            )
        self.retrieve_result_callback = self._client_pool_result
        n_jobs = self.effective_n_jobs(n_jobs)
        if n_jobs == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self._configure_kwargs = dict(memmappingpool_args)
        args = {**self.backend_kwargs, **memmappingpool_args}
        # Children are forked from this process: leave them less garbage.
        gc.collect()
        self._pool = _pools.MemmappingPool(n_jobs, **args)
        self._n_jobs = n_jobs
        self.parallel = parallel
        return n_jobs

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        if not self._foreign:
            return super().submit(func, callback)
        fut = _PoolResult()
        self._pool.apply_async(
            _CapturingCall(func),
            (),
            callback=lambda value: _settle(callback, fut, True, value),
            error_callback=lambda exc: _settle(callback, fut, False, exc),
        )
        return fut

    @staticmethod
    def _client_pool_result(future: Any) -> Any:
        # retrieve_result_callback on a client's pool: results as they are.
        return future.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        if not self._foreign:
            super().abort_everything(ensure_ready)
            return
        self.terminate()
        parallel = getattr(self, "parallel", None)
        if ensure_ready and parallel is not None:
            self.configure(
                n_jobs=self._n_jobs, parallel=parallel, **self._configure_kwargs
            )


def register_joblib_backends() -> None:
    """Register joblib's ``MultiprocessingBackend`` as "multiprocessing".

    Called once, when para_joblib's parallel API is first used: from then on
    the backend named "multiprocessing" is an instance of the class
    ``joblib._parallel_backends.MultiprocessingBackend`` (a subclass of
    para_core's, which behaves as para_core's until a client rebases
    ``PicklingPool``). A backend a program registered under that name itself
    is left in place.
    """
    current = para_core.BACKENDS.get("multiprocessing")
    if current is para_core.MultiprocessingBackend:
        para_core.register_parallel_backend("multiprocessing", MultiprocessingBackend)
