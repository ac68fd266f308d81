"""Failures: task errors, pickling errors, timeouts, crashed workers, Ctrl-C."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest
from _helpers import (
    exit_worker,
    fail_on,
    interrupt_on,
    kill_self,
    sleep_or_exit,
    sleep_then,
    square,
)
from loky.process_executor import TerminatedWorkerError

from para_core import Parallel, ParallelBackendBase, WorkerTerminatedError, delayed

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.mark.parametrize(
    "backend", ["sequential", "threading", "loky", "multiprocessing"]
)
@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
def test_task_error_keeps_type_and_worker_traceback(backend, return_as):
    with pytest.raises(ValueError, match="bad value 7") as info:
        list(
            Parallel(n_jobs=2, backend=backend, return_as=return_as)(
                delayed(fail_on)(i, 7) for i in range(20)
            )
        )
    if backend in ("loky", "multiprocessing"):
        text = str(info.value.__cause__)
        assert "fail_on" in text
        assert "raise ValueError" in text


def test_error_cancels_tasks_not_started():
    started = []
    lock = threading.Lock()

    def task(i):
        with lock:
            started.append(i)
        if i == 0:
            raise KeyError("first")
        time.sleep(0.01)
        return i

    with pytest.raises(KeyError, match="first"):
        Parallel(n_jobs=2, backend="threading", batch_size=1, pre_dispatch="all")(
            delayed(task)(i) for i in range(200)
        )
    time.sleep(0.1)  # let running tasks end; none may start later
    assert len(started) < 200


def test_next_call_works_after_error():
    with Parallel(n_jobs=2) as par:
        with pytest.raises(ValueError):
            par(delayed(fail_on)(i, 3) for i in range(10))
        assert par(delayed(square)(i) for i in range(5)) == [0, 1, 4, 9, 16]


def test_unpicklable_argument_fails_before_work_naming_it():
    lock = threading.Lock()
    with pytest.raises(pickle.PicklingError) as info:
        Parallel(n_jobs=2)(delayed(square)(x) for x in [1, lock])
    msg = str(info.value)
    assert "argument 0 of task #1" in msg
    assert "lock" in msg


@pytest.mark.parametrize("backend", ["loky", "multiprocessing", "threading"])
def test_timeout_raises_and_next_call_works(backend):
    # joblib raises multiprocessing.TimeoutError: code written for it
    # catches that class; ours is the builtin TimeoutError as well.
    seconds = 2 if backend == "threading" else 30  # threads cannot be stopped
    with pytest.raises(multiprocessing.TimeoutError, match=r"timeout=0\.5") as info:
        Parallel(n_jobs=2, backend=backend, timeout=0.5)(
            delayed(sleep_then)(i, seconds) for i in range(4)
        )
    assert isinstance(info.value, TimeoutError)
    assert pickle.loads(pickle.dumps(info.value)).args == info.value.args
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


def test_timeout_threading_backend():
    with pytest.raises(TimeoutError):
        Parallel(n_jobs=2, backend="threading", timeout=0.2)(
            delayed(sleep_then)(i, 1) for i in range(2)
        )


@pytest.mark.parametrize(
    ("func", "args", "expected"),
    [(exit_worker, (3,), "3"), (kill_self, (), "SIGKILL")],
)
def test_crashed_worker(func, args, expected):
    with pytest.raises(WorkerTerminatedError) as info:
        Parallel(n_jobs=2, batch_size=1)(delayed(func)(i, *args) for i in range(6))
    assert isinstance(info.value, TerminatedWorkerError)
    msg = str(info.value)
    assert "task #" in msg
    assert expected in msg
    # the next call gets fresh workers
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


@pytest.mark.parametrize(("n_jobs", "at"), [(2, 1), (3, 2)])
def test_crashed_worker_names_the_task_it_was_running(n_jobs, at):
    # The first n_jobs tasks start at once, one per worker, the rest wait:
    # when the worker running task `at` dies, loky fails every pending batch
    # alike; the error must name the dead worker's, not the first polled.
    with pytest.raises(WorkerTerminatedError) as info:
        Parallel(n_jobs=n_jobs, batch_size=1, pre_dispatch="all")(
            delayed(sleep_or_exit)(i, at, 3) for i in range(6)
        )
    msg = str(info.value)
    assert f"running task #{at} (calls of sleep_or_exit)" in msg
    others = [i for i in range(6) if i != at]
    assert not any(f"task #{i} " in msg for i in others), msg


def test_crashed_worker_inside_context_manager():
    with Parallel(n_jobs=2, batch_size=1) as par:
        with pytest.raises(WorkerTerminatedError):
            par(delayed(exit_worker)(i, 5) for i in range(4))
        assert par(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


@pytest.mark.parametrize("backend", ["multiprocessing", "loky"])
def test_keyboard_interrupt_in_a_task_reaches_the_caller(backend):
    # A multiprocessing.Pool worker dies of a BaseException and never answers
    # for its task: the caller waited forever.
    with Parallel(n_jobs=2, backend=backend) as par:
        with pytest.raises(KeyboardInterrupt, match="interrupted at 1"):
            par(delayed(interrupt_on)(x, 1) for x in range(4))
        # The pool works on after it.
        assert par(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]


_CTRL_C = """
import sys
sys.path.insert(0, {tests!r})
from _helpers import sleep_from
from para_core import Parallel, delayed
if __name__ == "__main__":
    print("ready", flush=True)
    try:
        tasks = (delayed(sleep_from)(i, {start}, 60) for i in range(20))
        Parallel(n_jobs=2, batch_size=1)(tasks)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(7)
"""


# From the first task on, or from task 10 on (past the first pre_dispatch
# batches).
@pytest.mark.parametrize("start", [0, 10])
def test_ctrl_c_stops_workers(start):
    code = textwrap.dedent(_CTRL_C.format(tests=os.path.dirname(__file__), start=start))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        workers = []
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [
                c
                for c in parent.children(recursive=True)
                if "resource_tracker" not in " ".join(c.cmdline())
            ]
            time.sleep(0.1)
        assert len(workers) >= 2
        time.sleep(1.0)  # the sleeping tasks are running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 7
        assert "interrupted" in proc.stdout.read()
        _gone, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_timeout_counts_from_when_the_caller_waits():
    # 12 batches of 0.4 s on 2 threads end 2.4 s after dispatch, but each is
    # awaited for about 0.4 s only: no TimeoutError with timeout=1.5.
    out = Parallel(
        n_jobs=2, backend="threading", timeout=1.5, batch_size=1, pre_dispatch="all"
    )(delayed(sleep_then)(i, 0.4) for i in range(12))
    assert out == list(range(12))


class _RefusingBackend(ParallelBackendBase):
    """A backend whose configuration fails, as a bad backend option does."""

    def effective_n_jobs(self, n_jobs):
        return 1

    def configure(self, n_jobs=1, parallel=None, **backend_kwargs):
        raise ValueError("refusing option frobnicate=3: accepted options are none")


@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
def test_backend_configuration_error_reaches_the_caller_unmasked(return_as):
    with pytest.raises(ValueError, match="refusing option frobnicate=3"):
        out = Parallel(backend=_RefusingBackend(), return_as=return_as)(
            delayed(square)(i) for i in range(3)
        )
        list(out)
