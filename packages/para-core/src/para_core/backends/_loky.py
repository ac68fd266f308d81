"""The loky backend (the default): batches in loky's reusable worker processes.

After a task's error the workers are kept (see ``_abort``), with the failed
call's batches that could not be cancelled still running there. The next
call does not wait behind them: it stops that executor first (its workers
are killed, a new one starts), unless another call still runs on it.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing as mp
import threading
import weakref
from collections.abc import Callable
from typing import Any

from .. import _ledger, _lifeline
from .._mp import ShutdownExecutorError, TerminatedWorkerError, loky
from ._base import AutoBatchingMixin, FallbackToBackend, ParallelBackendBase
from ._packets import run_pickled_batch
from ._process import _ProcessBackendMixin
from ._threads import SequentialBackend

__all__ = ["LokyBackend"]

# Batch tokens (see _ledger): unique in this process, never 0.
_TOKENS = itertools.count(1)

# Batches of failed calls still running, by executor (weak references to
# their futures: loky holds them until they end); and the calls running on
# each executor (from start_call to stop_call).
_LEFTOVERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RUNNING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STATE_LOCK = threading.Lock()


# Seconds a new call gives the batches a failed call left running to end
# before it stops their workers: a batch cut short by an error is usually
# about to end (auto batches last a fraction of a second), and new workers
# cost more (a process start and the imports of the tasks' modules).
_GRACE = 0.5


def _stop_leftovers(only: Any = None) -> bool:
    """Stop the executors (or ``only``) where batches of failed calls still
    run and no call does; True if one was stopped."""
    stopped = False
    with _STATE_LOCK:
        for executor, refs in list(_LEFTOVERS.items()):
            if only is not None and executor is not only:
                continue
            left = [f for r in refs if (f := r()) is not None and not f.done()]
            del _LEFTOVERS[executor]
            if left and _RUNNING.get(executor):
                # Its workers serve another call: not stopped.
                _LEFTOVERS[executor] = [weakref.ref(f) for f in left]
            elif left and concurrent.futures.wait(left, timeout=_GRACE).not_done:
                executor.shutdown(wait=True, kill_workers=True)
                stopped = True
    return stopped


def _nothing() -> None:
    """The task that makes loky start its workers (see _start_workers)."""


def _start_workers(executor: Any) -> None:
    """Have ``executor`` start its missing worker processes now.

    loky starts them on a submit, and a call submits its first batch only
    once it is pickled: with a large argument (the 320 MB ``X`` of a
    cross-validation, written into shared memory on the way), the workers
    would start and import the tasks' modules only after that write, where
    they can do it meanwhile, on the other core. A no-op task is the public
    way to trigger the start; the count of live workers it reads is loky's
    (skipped if a loky release renames it: the start then waits, as before).
    """
    processes = getattr(executor, "_processes", None)
    wanted = getattr(executor, "_max_workers", None)
    if processes is None or wanted is None or len(processes) >= wanted:
        return
    try:
        executor.submit(_nothing)
    except Exception:  # shut down or broken: the call's own submit reports it
        return


# joblib's text when the shared executor was shut down under a call: another
# call's generator, dropped, stopped the workers (see _abort).
_SHUT_DOWN = (
    "The executor underlying Parallel has been shutdown. This is likely due "
    "to the garbage collection of a previous generator from a call to "
    "Parallel with return_as='generator'. Make sure the generator is not "
    "garbage collected when submitting a new job or that it is first "
    "properly exhausted."
)


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
        _stop_leftovers()  # loky would wait for them to resize or replace it
        self._workers = loky.get_reusable_executor(**self._executor_args)
        # They boot (an interpreter each) while the caller sets the call up.
        _start_workers(self._workers)
        return n_jobs

    # The executor of the running call, counted in _RUNNING.
    _call_executor: Any = None

    def start_call(self) -> None:
        super().start_call()
        self.dead_tokens = frozenset()
        if self._workers is not None and _stop_leftovers(self._workers):
            # Between the calls of a ``with Parallel(...)`` block.
            self._workers = loky.get_reusable_executor(**self._executor_args)
        executor = self._call_executor = self._workers
        if executor is not None:
            with _STATE_LOCK:
                _RUNNING[executor] = _RUNNING.get(executor, 0) + 1
            _start_workers(executor)

    def stop_call(self) -> None:
        executor, self._call_executor = self._call_executor, None
        if executor is not None:
            with _STATE_LOCK:
                n = _RUNNING.pop(executor, 0) - 1
                if n > 0:
                    _RUNNING[executor] = n

    def _note_leftovers(self, futures: list[Any]) -> None:
        # After a task's error (see _abort): the call's batches still running.
        if self._workers is not None:
            with _STATE_LOCK:
                refs = _LEFTOVERS.setdefault(self._workers, [])
                refs.extend(weakref.ref(f) for f in futures)

    def submit(self, func: Callable[[], Any], callback: Any = None) -> Any:
        payload, reducer = self._payload(func)
        token = next(_TOKENS)
        try:
            future = self._workers.submit(run_pickled_batch, payload, reducer, token)
        except ShutdownExecutorError as exc:
            raise RuntimeError(_SHUT_DOWN) from exc
        future.para_token = token
        future.add_done_callback(self._note_death)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    @staticmethod
    def _retrieve_packet(future: Any) -> Any:
        try:
            return future.result()
        except ShutdownExecutorError as exc:
            raise RuntimeError(_SHUT_DOWN) from exc

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
        if self._workers is not None:
            self._workers.shutdown(wait=True, kill_workers=True)
            self._workers = None
        if ensure_ready:
            self._workers = loky.get_reusable_executor(**self._executor_args)

    def terminate(self) -> None:
        # Workers stay alive (reusable executor) for the next call.
        self._workers = None
        self.reset_batch_stats()
