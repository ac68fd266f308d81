"""The backends that run in the caller's process: sequential and threading.

``SequentialBackend`` runs each task in the caller (``n_jobs=1``; the other
backends fall back to it); ``ThreadingBackend`` runs batches on a pool of
threads. Neither pickles anything: tasks share the caller's memory.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._registry import get_active_backend
from ._base import (
    AutoBatchingMixin,
    FallbackToBackend,
    ParallelBackendBase,
    _positive_n_jobs,
)

__all__ = ["SequentialBackend", "ThreadingBackend"]


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
        return get_active_backend()


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
            # Waits for the batches already running (joblib's thread pool
            # does not): when the failed call returns, no thread still uses
            # (and keeps alive) its arguments. A dropped generator does not
            # wait (see _abandon).
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _abandon(self) -> None:
        # A dropped result generator: its running batches cannot be stopped
        # and are not waited for (joblib's thread pool does not either).
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def terminate(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.reset_batch_stats()
