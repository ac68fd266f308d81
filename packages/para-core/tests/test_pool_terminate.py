"""The multiprocessing backend's pool stops its workers without hanging.

``multiprocessing.pool.Pool.terminate()`` kills its workers before its task
handler has necessarily sent its end marker on the result queue; a worker
killed while writing a result holds that queue's write lock forever, and
``terminate()`` then waits forever for the task handler (CPython issue
96995; seen as an intermittent hang of scikit-learn's
``test_filter_warning_propagates[2-multiprocessing]``). ``SafePool`` stops
workers only while it holds that lock.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from _helpers import fail_on, write_result_while_unread

from para_core import MultiprocessingBackend, Parallel, delayed
from para_core.backends._pool import SafePool

# Larger than any pipe's buffer: the sender blocks until it is read.
_RESULT_BYTES = 8 << 20
# Bound of the wait for a terminate() that would otherwise hang (not a
# measure of speed: the fixed pool ends as soon as its workers are gone).
_HANG = 120


def _force_the_race(pool: SafePool, folder: Path) -> None:
    """Hold the pool's own threads at two points of ``terminate()`` so that
    its one worker is inside the result queue's write lock, writing, when
    the workers are stopped, and the task handler has not yet sent its end
    marker: the interleaving that hung, made certain."""
    task_handler = pool._task_handler
    outqueue = pool._outqueue
    put = outqueue.put

    def task_handler_waits(obj):
        if threading.current_thread() is task_handler:
            _wait_for(folder / "holding")
        put(obj)

    outqueue.put = task_handler_waits

    worker_handler = pool._worker_handler
    join = worker_handler.join

    def then_worker_holds_lock(timeout=None):
        join(timeout)
        _wait_for(folder / "holding")

    worker_handler.join = then_worker_holds_lock

    def reader_gone():
        pool._result_handler.join()
        (folder / "reader-gone").touch()

    threading.Thread(target=reader_gone, daemon=True).start()


def _wait_for(path: Path) -> None:
    event = threading.Event()
    while not path.exists():
        event.wait(0.01)


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
def test_terminate_while_a_worker_writes_a_result(tmp_path, method, no_leftovers):
    try:
        _terminate_while_a_worker_writes_a_result(tmp_path, method)
    finally:
        if method == "forkserver":  # the server lives on, a child of ours
            from multiprocessing import forkserver

            forkserver._forkserver._stop()


def _terminate_while_a_worker_writes_a_result(tmp_path: Path, method: str) -> None:
    pool = SafePool(1, context=multiprocessing.get_context(method))
    workers = list(pool._pool)
    pool.apply_async(write_result_while_unread, (str(tmp_path), _RESULT_BYTES))
    _wait_for(tmp_path / "started")  # not in the queue any more: running
    _force_the_race(pool, tmp_path)
    stopper = threading.Thread(target=pool.terminate, daemon=True)
    stopper.start()
    stopper.join(_HANG)
    # A hung terminate() leaves the pool's threads stuck (daemon threads);
    # its workers are gone already.
    assert not stopper.is_alive(), "terminate() hung on the result queue's lock"
    assert (tmp_path / "holding").exists()  # the worker was inside the lock
    pool.join()
    assert [w.exitcode for w in workers] == [-15]  # stopped by terminate()
    assert not pool._task_handler.is_alive()


def test_backend_pool_is_safe(no_leftovers):
    backend = MultiprocessingBackend()
    try:
        backend.configure(n_jobs=2)
        assert isinstance(backend._pool, SafePool)
    finally:
        backend.terminate()


def test_failing_tasks_end_the_call(no_leftovers):
    # The reported case: every task fails while the other's result is on
    # its way; the call raises, and its workers are gone.
    for _ in range(20):
        with pytest.raises(ValueError, match="bad value"):
            Parallel(n_jobs=2, backend="multiprocessing")(
                delayed(fail_on)(x, x) for x in range(2)
            )
