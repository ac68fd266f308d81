"""A ``multiprocessing`` pool whose ``terminate()`` cannot hang on its workers.

The standard library's ``Pool.terminate()`` (``_terminate_pool``, unchanged
from Python 3.8 to 3.14, CPython issue 96995) stops its workers with SIGTERM
*before* its task handler thread has necessarily put its end marker on the
result queue. A worker writing a result at that instant dies holding the
result queue's write lock (a semaphore nobody releases for the dead), so the
task handler waits for that lock forever, and so does ``terminate()``, which
joins it. It happens when a call ends early (a task's error, an
interruption, a timeout) while another task's result is on its way: seen as
an intermittent hang of scikit-learn's ``test_filter_warning_propagates`` on
the "multiprocessing" backend.

:class:`SafePool` changes one step of that sequence: workers are stopped
only while this thread holds the result queue's write lock, so none of them
can die inside it. Waiting for that lock cannot block for good either: by
then the pool's result handler has been told to stop, so once it is gone
this thread reads (and drops) what a worker is still writing, until the
worker lets go of the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from multiprocessing.pool import Pool
from typing import Any

__all__ = ["SafePool"]

# How long one wait for the write lock lasts before the result pipe is
# drained again (seconds): only the period of a wait loop.
_LOCK_POLL = 0.05


class SafePool(Pool):
    """``multiprocessing.pool.Pool`` whose ``terminate()`` never kills a
    worker in the middle of writing a result (see the module docstring)."""

    @classmethod
    def _terminate_pool(cls, *args: Any) -> None:  # type: ignore[override]
        # The arguments the standard library's finalizer passes: (taskqueue,
        # inqueue, outqueue, pool, change_notifier, worker_handler,
        # task_handler, result_handler, cache). Any other layout (a future
        # Python) is left to the standard sequence.
        if len(args) == 9 and isinstance(args[3], list):
            outqueue, workers, result_handler = args[2], args[3], args[7]
            stopper = _Stopper(workers, outqueue, result_handler)
            args = (*args[:3], _GuardedWorkers(workers, stopper), *args[4:])
        super()._terminate_pool(*args)


class _Stopper:
    """Stops every worker of a pool at once, none inside the result queue's
    write lock."""

    def __init__(self, workers: list, outqueue: Any, result_handler: Any) -> None:
        self.workers = workers
        self.outqueue = outqueue
        self.result_handler = result_handler
        self.done = False

    def stop(self) -> None:
        if self.done:
            return
        self.done = True
        lock = getattr(self.outqueue, "_wlock", None)  # None where writes are atomic
        reader = getattr(self.outqueue, "_reader", None)
        held = False
        if (
            lock is not None
            and reader is not None
            and threading.current_thread() is not self.result_handler
        ):
            # Told to stop before the workers are: it ends without them. Once
            # it is gone, this thread is the only reader of the result pipe.
            self.result_handler.join()
            while not lock.acquire(timeout=_LOCK_POLL):
                # A worker holds it, maybe blocked writing a result larger
                # than the pipe that nobody reads any more: read it away.
                _drain(reader)
            held = True
        try:
            for worker in self.workers:
                if worker.exitcode is None:
                    worker.terminate()
            for worker in self.workers:
                worker.join()
        finally:
            if held:
                # Room in the pipe for the task handler's end marker, which
                # it writes once the lock is free.
                _drain(reader)
                lock.release()


def _drain(reader: Any) -> None:
    while reader.poll():
        reader.recv_bytes()


class _GuardedWorker:
    """A worker process whose ``terminate()`` goes through the stopper."""

    __slots__ = ("_process", "_stopper")

    def __init__(self, process: Any, stopper: _Stopper) -> None:
        self._process = process
        self._stopper = stopper

    def terminate(self) -> None:
        self._stopper.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._process, name)


class _GuardedWorkers(Sequence):
    """The pool's live list of workers, seen through :class:`_GuardedWorker`
    (read when the standard sequence reaches it: the pool's worker handler
    may still replace workers until then)."""

    def __init__(self, workers: list, stopper: _Stopper) -> None:
        self._workers = workers
        self._stopper = stopper

    def __len__(self) -> int:
        return len(self._workers)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [_GuardedWorker(p, self._stopper) for p in self._workers[index]]
        return _GuardedWorker(self._workers[index], self._stopper)

    def __iter__(self) -> Iterator[_GuardedWorker]:
        return (_GuardedWorker(p, self._stopper) for p in list(self._workers))
