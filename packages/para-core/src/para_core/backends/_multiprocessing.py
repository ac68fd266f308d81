"""The multiprocessing backend: batches in a ``multiprocessing.Pool`` per call."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
from collections.abc import Callable
from multiprocessing import util as mp_util
from typing import Any

from .. import _lifeline
from .._mp import loky
from ._base import AutoBatchingMixin, FallbackToBackend, ParallelBackendBase
from ._packets import run_pickled_batch
from ._process import _ProcessBackendMixin
from ._threads import SequentialBackend

__all__ = ["MultiprocessingBackend"]


def _in_daemon_or_worker() -> bool:
    if mp.current_process().daemon:
        return True
    return loky is not None and loky.process_executor._CURRENT_DEPTH > 0


class _PoolFuture:
    """Small future filled by ``multiprocessing.pool`` callbacks."""

    __slots__ = ("_ok", "_value")

    def result(self, timeout: float | None = None) -> Any:
        if not self._ok:
            raise self._value
        return self._value

    def cancel(self) -> bool:
        return False


class _WorkerInterrupt(Exception):
    """A task's KeyboardInterrupt, on its way back as an ``Exception``.

    A ``multiprocessing.Pool`` worker returns only ``Exception``s: any other
    ``BaseException`` kills it and the task's result never comes, so the
    caller would wait forever. The caller raises KeyboardInterrupt again.
    """


def _run_in_pool(payload: Any, reducer: Any) -> Any:
    try:
        return run_pickled_batch(payload, reducer)
    except KeyboardInterrupt as exc:
        raise _WorkerInterrupt(*exc.args) from None


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
            remove = (mp_util.get_temp_dir(),)
        initializer, initargs = _lifeline.bind(_set_env, initargs, remove)
        # The standard Pool, but its terminate() cannot hang on a worker
        # stopped while sending a result (see _pool). Imported here: the
        # module needs _multiprocessing, which some platforms lack.
        from ._pool import SafePool

        self._pool = SafePool(
            n_jobs,
            initializer=initializer,
            initargs=initargs,
            context=context.get_context(),
            **kwargs,
        )
        self._n_jobs = n_jobs
        self.parallel = parallel
        return n_jobs

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        payload, reducer = self._payload(func)
        fut = _PoolFuture()
        self._pool.apply_async(
            _run_in_pool,
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
    if not ok and isinstance(value, _WorkerInterrupt):
        value = KeyboardInterrupt(*value.args).with_traceback(value.__traceback__)
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
