"""A call that ends early stops its work: nothing waits for it.

A result generator dropped before its end stops the tasks still running
(process workers are killed), as in joblib, so that the next call does not
wait for them; workers with nothing of the call left keep running. A call
sharing loky's executor with the dropped one gets joblib's RuntimeError.
After a task's error, the workers are kept, and the next call stops the
failed call's batches still running rather than wait behind them (unless
another call runs on those workers). ``Parallel`` keeps joblib's
``_aborting`` flag.
"""

from __future__ import annotations

import os
import threading
import time

import psutil
import pytest
from _helpers import fail_on, fail_once_marked, mark_then_sleep, square

from para_core import Parallel, delayed

pytestmark = pytest.mark.usefixtures("no_leftovers")

GENERATORS = ["generator", "generator_unordered"]


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_long_tasks(folder, backend="loky", return_as="generator", n_jobs=2):
    """A generator whose task 0 is consumed and tasks 1.. sleep 60 s; returns
    it, its Parallel and the pids of the workers running the long tasks."""
    parallel = Parallel(
        n_jobs=n_jobs, backend=backend, return_as=return_as, batch_size=1
    )
    gen = parallel(delayed(mark_then_sleep)(i, 1, 60, str(folder)) for i in range(8))
    assert next(gen) == 0
    assert _wait_for(lambda: len(os.listdir(folder)) == n_jobs)
    pids = {int(name.split("-")[0]) for name in os.listdir(folder)}
    return gen, parallel, pids


@pytest.mark.parametrize("return_as", GENERATORS)
@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_dropped_generator_stops_its_running_tasks(tmp_path, backend, return_as):
    gen, parallel, pids = _start_long_tasks(tmp_path, backend, return_as)
    assert all(_alive(pid) for pid in pids)
    del gen
    # Stopped now, not when their 60 s are over (well before).
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20)
    assert parallel._aborting
    assert not parallel._running
    # Another size: loky's shared executor is rebuilt, not waited for.
    assert Parallel(n_jobs=3)(delayed(square)(i) for i in range(6)) == [
        i * i for i in range(6)
    ]


def _loky_executor():
    """loky's reusable executor, the one para's calls share."""
    from loky.reusable_executor import _executor_storage

    return _executor_storage.executor


def test_dropped_generator_with_no_task_left_keeps_the_workers():
    gen = Parallel(n_jobs=2, return_as="generator", batch_size=1)(
        delayed(square)(i) for i in range(4)
    )
    assert next(gen) == 0
    executor = _loky_executor()
    # The engine's batches in flight for this call (its _Call's state).
    inflight = gen.gi_frame.f_locals["self"].inflight
    assert _wait_for(lambda: all(f.done() for _b, f, _s in inflight.values()))
    del gen
    assert not executor._flags.shutdown  # nothing ran: the workers stay
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert _loky_executor() is executor


def test_call_sharing_the_executor_gets_joblibs_error(tmp_path):
    first, _parallel, pids = _start_long_tasks(tmp_path)
    # Same size: this call's batches queue on the same (busy) loky executor.
    second = Parallel(n_jobs=2, return_as="generator")(
        delayed(square)(i) for i in range(5)
    )
    del first  # stops the workers under the second call too
    with pytest.raises(RuntimeError, match="The executor underlying Parallel has"):
        list(second)
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20)
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]


@pytest.mark.parametrize("return_as", GENERATORS)
def test_dropped_threading_generator_does_not_wait_for_its_threads(return_as):
    started, release, finished = (threading.Event() for _ in range(3))

    def blocking(i):
        if i == 1:
            started.set()
            release.wait(60)
            finished.set()
        return i

    parallel = Parallel(
        n_jobs=2, backend="threading", return_as=return_as, batch_size=1
    )
    gen = parallel(delayed(blocking)(i) for i in range(4))
    assert started.wait(30)
    del gen
    try:
        # Threads cannot be stopped; the caller did not wait for this one.
        assert not finished.is_set()
        assert parallel._aborting and not parallel._running
        assert Parallel(n_jobs=2, backend="threading")(
            delayed(square)(i) for i in range(3)
        ) == [0, 1, 4]
    finally:
        release.set()
    assert finished.wait(30)


def test_generator_dropped_in_another_thread_ends_its_call(tmp_path):
    gen, parallel, pids = _start_long_tasks(tmp_path)
    closer = threading.Thread(target=gen.close)
    closer.start()
    closer.join()
    del gen
    # The call ends in a thread of its own (see _dispatch._end_elsewhere).
    for thread in threading.enumerate():
        if thread.name == "para-dropped-generator":
            thread.join(30)
    assert _wait_for(lambda: not parallel._running)
    assert parallel._aborting
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20)
    assert list(parallel(delayed(square)(i) for i in range(3))) == [0, 1, 4]


@pytest.mark.parametrize("backend", ["loky", "threading", "sequential"])
def test_aborting_flag_follows_the_last_call(backend):
    n_jobs = 1 if backend == "sequential" else 2
    parallel = Parallel(n_jobs=n_jobs, backend=backend)
    assert parallel._aborting is False
    with pytest.raises(ValueError, match="bad value 3"):
        parallel(delayed(fail_on)(i, 3) for i in range(6))
    assert parallel._aborting is True
    assert parallel(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert parallel._aborting is False


def _fail_leaving_long_tasks(folder):
    """A loky call whose task 0 fails while others sleep 60 s: their pids."""
    with pytest.raises(ValueError, match="bad value 0"):
        Parallel(n_jobs=2, batch_size=1)(
            delayed(fail_once_marked)(i, str(folder), 60) for i in range(8)
        )
    return {int(name.split("-")[0]) for name in os.listdir(folder)}


def test_next_call_stops_what_a_failed_call_left_running(tmp_path):
    pids = _fail_leaving_long_tasks(tmp_path)
    assert pids and all(_alive(pid) for pid in pids)  # kept after the error
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(5)) == [
        i * i for i in range(5)
    ]
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20)


def test_next_call_in_a_with_block_stops_what_a_failed_call_left(tmp_path):
    with Parallel(n_jobs=2, batch_size=1) as par:
        with pytest.raises(ValueError, match="bad value 0"):
            par(delayed(fail_once_marked)(i, str(tmp_path), 60) for i in range(8))
        pids = {int(name.split("-")[0]) for name in os.listdir(tmp_path)}
        assert par(delayed(square)(i) for i in range(5)) == [i * i for i in range(5)]
        assert _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20)


def test_leftovers_stay_while_another_call_runs_on_their_workers(tmp_path):
    # The outer generator's workers run the inner calls' tasks too: stopping
    # them would fail the outer call; the inner call waits instead.
    outer = Parallel(n_jobs=2, return_as="generator", batch_size=1)(
        delayed(square)(i) for i in range(6)
    )
    out = [next(outer)]
    folder = tmp_path / "marks"
    folder.mkdir()
    with pytest.raises(ValueError, match="bad value 0"):
        Parallel(n_jobs=2, batch_size=1)(
            delayed(fail_once_marked)(i, str(folder), 2) for i in range(3)
        )
    pids = {int(name.split("-")[0]) for name in os.listdir(folder)}
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert all(_alive(pid) for pid in pids)
    assert out + list(outer) == [i * i for i in range(6)]


def test_failed_call_with_nothing_left_keeps_the_workers():
    # One batch: when its error arrives, nothing of the call runs any more.
    with pytest.raises(ValueError, match="bad value 9"):
        Parallel(n_jobs=2, batch_size=10)(delayed(fail_on)(i, 9) for i in range(10))
    executor = _loky_executor()
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert _loky_executor() is executor
    assert not executor._flags.shutdown


@pytest.mark.parametrize("return_as", ["list", *GENERATORS])
def test_threading_timeout_does_not_wait_for_its_threads(return_as):
    release, finished = threading.Event(), threading.Event()

    def blocking(i):
        release.wait(60)
        finished.set()
        return i

    with pytest.raises(TimeoutError):
        list(
            Parallel(n_jobs=2, backend="threading", timeout=0.2, return_as=return_as)(
                delayed(blocking)(i) for i in range(4)
            )
        )
    try:
        assert not finished.is_set()  # the caller did not wait for them
    finally:
        release.set()
    assert finished.wait(30)


def test_end_of_with_block_stops_its_running_generator(tmp_path):
    with Parallel(n_jobs=2, return_as="generator", batch_size=1) as par:
        gen = par(delayed(mark_then_sleep)(i, 1, 60, str(tmp_path)) for i in range(8))
        assert next(gen) == 0
        assert _wait_for(lambda: len(os.listdir(tmp_path)) == 2)
    pids = {int(name.split("-")[0]) for name in os.listdir(tmp_path)}
    assert _wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=20)
    assert par._aborting
    del gen
    assert not par._running
    assert list(par(delayed(square)(i) for i in range(3))) == [0, 1, 4]


def test_end_of_threading_with_block_does_not_wait_for_its_generator():
    release, finished = threading.Event(), threading.Event()

    def blocking(i):
        release.wait(60)
        finished.set()
        return i

    try:
        with Parallel(n_jobs=2, backend="threading", return_as="generator") as par:
            gen = par(delayed(blocking)(i) for i in range(10))
        assert not finished.is_set()  # the block's end did not wait for them
        del gen
        assert not par._running
    finally:
        release.set()
    assert finished.wait(30)
