"""The backend protocol: what ``Parallel`` asks of an execution backend.

This follows joblib's documented ``ParallelBackendBase`` contract, so a
backend written for joblib runs under para unchanged::

    Parallel.__call__
      backend.configure(n_jobs, parallel=self, prefer=..., require=..., **kw)
          -> effective number of workers (or raise FallbackToBackend(other))
      backend.start_call()
      for each batch:
          future = backend.submit(batch, callback=on_done)
          ...  on_done(future) runs when the batch finished (any thread):
               results = backend.retrieve_result_callback(future)
          (backends with ``supports_retrieve_callback = False`` are polled
           with ``backend.retrieve_result(future, timeout)`` instead)
      on the first error: backend.abort_everything(ensure_ready=...)
      backend.stop_call()
    end of the call / with-block: backend.terminate()

``batch`` is a :class:`BatchedCalls`: a picklable, argument-less callable
returning the list of its tasks' results; ``batch.items`` is the list of
``(function, args, kwargs)`` it runs (a backend may inspect it, e.g. to
scatter large arguments once).
"""

from __future__ import annotations

import contextlib
import os
import threading
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator
from typing import Any

from .._mp import loky_cpu_count as _loky_cpu_count
from .._mp import processes_available
from .._registry import builtin_backend

__all__ = [
    "AutoBatchingMixin",
    "FallbackToBackend",
    "ParallelBackendBase",
]


class FallbackToBackend(Exception):
    """Raised by ``configure`` to make ``Parallel`` use another backend."""

    def __init__(self, backend: ParallelBackendBase) -> None:
        super().__init__(backend)
        self.backend = backend


class ParallelBackendBase(metaclass=ABCMeta):
    """Base class of the execution backends of :class:`~para_core.Parallel`.

    Subclasses must implement :meth:`effective_n_jobs` and :meth:`submit`,
    and, when ``supports_retrieve_callback`` is True (recommended),
    :meth:`retrieve_result_callback`. Everything else has a working default.

    Parameters
    ----------
    nesting_level : int, optional
        How deep in nested ``Parallel`` calls this backend runs (0 at top).
    inner_max_num_threads : int, optional
        Cap on the threads of BLAS/OpenMP pools in the workers.
    **backend_kwargs
        Kept as ``self.backend_kwargs`` for the subclass.

    Examples
    --------
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> class PoolBackend(ParallelBackendBase):
    ...     supports_retrieve_callback = True
    ...     def effective_n_jobs(self, n_jobs):
    ...         return 2
    ...     def configure(self, n_jobs=1, parallel=None, **kwargs):
    ...         self.parallel = parallel
    ...         self._pool = ThreadPoolExecutor(2)
    ...         return 2
    ...     def submit(self, func, callback=None):
    ...         future = self._pool.submit(func)
    ...         future.add_done_callback(callback)
    ...         return future
    ...     def retrieve_result_callback(self, future):
    ...         return future.result()
    ...     def terminate(self):
    ...         self._pool.shutdown()
    """

    #: Number of workers used when ``n_jobs`` is None.
    default_n_jobs = 1
    #: Whether ``inner_max_num_threads`` is honoured.
    supports_inner_max_num_threads = False
    #: True when the backend calls ``callback`` and implements
    #: :meth:`retrieve_result_callback`; False means results are polled with
    #: :meth:`retrieve_result`.
    supports_retrieve_callback = False
    #: Workers share the caller's memory (threads).
    supports_sharedmem = False
    #: Workers are threads of the caller's process.
    uses_threads = False
    nesting_level: int | None = None

    MAX_NUM_THREADS_VARS = [
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "BLIS_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMBA_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    ]
    TBB_ENABLE_IPC_VAR = "ENABLE_IPC"

    def __init__(
        self,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **backend_kwargs: Any,
    ) -> None:
        super().__init__()
        self.nesting_level = nesting_level
        self.inner_max_num_threads = inner_max_num_threads
        self.backend_kwargs = backend_kwargs

    @property
    def supports_return_generator(self) -> bool:
        """Whether results can be streamed (``return_as="generator"``)."""
        return self.supports_retrieve_callback

    @property
    def supports_timeout(self) -> bool:
        """Whether ``Parallel(timeout=...)`` is honoured."""
        return self.supports_retrieve_callback

    @abstractmethod
    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Return how many workers ``n_jobs`` means for this backend."""

    def apply_async(self, func: Callable[[], Any], callback: Any = None) -> Any:
        """Deprecated spelling of :meth:`submit`, kept for old backends."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement submit(func, callback)"
        )

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        """Schedule ``func()`` and return a future-like object.

        Parameters
        ----------
        func : callable
            A :class:`BatchedCalls` to run without arguments.
        callback : callable, optional
            To be called with the future-like object once it finished
            (e.g. ``future.add_done_callback(callback)``).

        Returns
        -------
        future-like
            Passed back to :meth:`retrieve_result_callback` or
            :meth:`retrieve_result`.
        """
        return self.apply_async(func, callback)

    def retrieve_result_callback(self, out: Any) -> Any:
        """Return the result held by the future-like ``out`` (or raise)."""
        return out.result()

    def retrieve_result(self, out: Any, timeout: float | None = None) -> Any:
        """Wait for and return the result of ``out`` (polling backends).

        ``out`` is an ``AsyncResult`` (``get``) as in joblib, or a
        ``concurrent.futures.Future`` (``result``), which para's own
        backends return: a subclass may turn callbacks off and keep those.
        """
        if not hasattr(out, "get") and hasattr(out, "result"):
            return out.result(timeout=timeout if self.supports_timeout else None)
        if self.supports_timeout:
            return out.get(timeout=timeout)
        return out.get()

    def configure(
        self,
        n_jobs: int | None = 1,
        parallel: Any = None,
        prefer: str | None = None,
        require: str | None = None,
        **backend_kwargs: Any,
    ) -> int:
        """Prepare the backend for a call and return the number of workers."""
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def start_call(self) -> None:  # noqa: B027
        """Called at the start of each ``Parallel`` call."""

    def stop_call(self) -> None:  # noqa: B027
        """Called at the end of each ``Parallel`` call."""

    def terminate(self) -> None:  # noqa: B027
        """Release the workers (end of a call, or of a ``with`` block)."""

    def compute_batch_size(self) -> int:
        """Return the number of tasks to put in the next batch."""
        return 1

    def batch_completed(self, batch_size: int, duration: float) -> None:  # noqa: B027
        """Learn from a finished batch (used by auto batching)."""

    def get_exceptions(self) -> list:
        """Exceptions the backend should let through (rarely needed)."""
        return []

    def abort_everything(self, ensure_ready: bool = True) -> None:  # noqa: B027
        """Cancel what runs; if ``ensure_ready`` the backend must stay usable."""

    def get_nested_backend(self) -> tuple[ParallelBackendBase, int | None]:
        """Return ``(backend, n_jobs)`` for ``Parallel`` calls made by tasks.

        One level of threads, then sequential, so nested loops never
        oversubscribe the machine.
        """
        level = (getattr(self, "nesting_level", 0) or 0) + 1
        name = "sequential" if level > 1 else "threading"
        return builtin_backend(name, nesting_level=level), None

    @contextlib.contextmanager
    def retrieval_context(self) -> Iterator[None]:
        """Context in which ``Parallel`` waits for results (no-op by default)."""
        yield

    def _prepare_worker_env(self, n_jobs: int) -> dict[str, str]:
        """Environment capping native thread pools in ``n_jobs`` workers."""
        explicit = self.inner_max_num_threads
        default = max(_usable_cpus() // max(n_jobs, 1), 1)
        env = {}
        for var in self.MAX_NUM_THREADS_VARS:
            value = os.environ.get(var, default) if explicit is None else explicit
            env[var] = str(value)
        if self.TBB_ENABLE_IPC_VAR not in os.environ:
            env[self.TBB_ENABLE_IPC_VAR] = "1"
        return env

    @staticmethod
    def in_main_thread() -> bool:
        """True when called from the main thread."""
        return threading.current_thread() is threading.main_thread()


def _positive_n_jobs(n_jobs: Any) -> int:
    """Workers for ``n_jobs``: -1 all CPUs, -2 all but one, ..., None one."""
    if n_jobs == 0:
        raise ValueError("n_jobs == 0 in Parallel has no meaning")
    if n_jobs is None or not processes_available():
        return 1  # no processes here: no threads either, as joblib
    if n_jobs < 0:
        return max(_loky_cpu_count() + 1 + n_jobs, 1)
    return n_jobs


def _usable_cpus() -> int:
    """loky's CPU count, cached while its inputs stay the same.

    loky reads cgroup files on each call (about 0.1 ms, a third of a warm
    2-task call). The cache follows ``LOKY_MAX_CPU_COUNT`` and the affinity
    mask; a cgroup quota changed while the process runs is seen only when
    one of those changes too.
    """
    global _CPUS
    key = (os.environ.get("LOKY_MAX_CPU_COUNT"), _affinity())
    if _CPUS[0] != key:
        _CPUS = (key, _loky_cpu_count())
    return _CPUS[1]


def _affinity() -> Any:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return None


_CPUS: tuple[Any, int] = (object(), 0)


class AutoBatchingMixin:
    """Grow or shrink batches so that each one lasts a fraction of a second.

    Starts with one task per batch; once batches are seen to finish fast the
    size grows geometrically (at most x8 per step) toward ``TARGET_DURATION``.
    """

    MIN_IDEAL_BATCH_DURATION = 0.2
    MAX_IDEAL_BATCH_DURATION = 2.0
    MAX_GROWTH = 8
    # joblib's names for the state a reset returns to (its tests and
    # subclasses read them).
    _DEFAULT_EFFECTIVE_BATCH_SIZE = 1
    _DEFAULT_SMOOTHED_BATCH_DURATION = 0.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reset_batch_stats()

    def reset_batch_stats(self) -> None:
        """Forget what was learnt about task durations."""
        self._effective_batch_size = self._DEFAULT_EFFECTIVE_BATCH_SIZE
        self._smoothed_batch_duration = self._DEFAULT_SMOOTHED_BATCH_DURATION

    def compute_batch_size(self) -> int:
        size = self._effective_batch_size
        duration = self._smoothed_batch_duration
        if 0 < duration < self.MIN_IDEAL_BATCH_DURATION:
            ideal = int(size * self.MIN_IDEAL_BATCH_DURATION / duration)
            new = max(min(self.MAX_GROWTH * size, ideal), 1)
        elif duration > self.MAX_IDEAL_BATCH_DURATION and size >= 2:
            ideal = int(size * self.MIN_IDEAL_BATCH_DURATION / duration)
            new = max(2 * ideal, 1)
        else:
            new = size
        if new != size:
            self._effective_batch_size = new
            self._smoothed_batch_duration = 0.0
            parallel = getattr(self, "parallel", None)
            if parallel is not None and getattr(parallel, "verbose", 0) >= 10:
                speed = "fast" if new > size else "slow"
                parallel._print(
                    f"Batch computation too {speed} ({duration}s.) "
                    f"Setting batch_size={new}."
                )
        return new

    def batch_completed(self, batch_size: int, duration: float) -> None:
        if batch_size == self._effective_batch_size:
            old = self._smoothed_batch_duration
            self._smoothed_batch_duration = (
                duration if old == 0.0 else 0.8 * old + 0.2 * duration
            )
