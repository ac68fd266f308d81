"""Streams: loky calls beyond their first batches go over direct pipes."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import threading
import time

import psutil
import pytest
from _helpers import (
    big_result,
    exit_at,
    fail_on,
    hang_from,
    log_call,
    sleep_from,
    square,
    unpicklable_result_at,
)

import para_core._backends as backends
from para_core import Parallel, WorkerTerminatedError, _streams, delayed

pytestmark = [
    pytest.mark.usefixtures("no_leftovers", "streams_on"),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="streams are Linux-only"
    ),
]


@pytest.fixture
def streams_on(monkeypatch):
    # Also in the test run that turns them off for the rest of the suite.
    monkeypatch.setenv("PARA_CORE_STREAMS", "1")


MODES = ["list", "generator", "generator_unordered"]


@pytest.fixture
def sent(monkeypatch):
    """Count the batches sent over streams; check no pipe is left behind."""
    count = []
    submit = _streams.Streams.submit

    def counting(self, *args):
        count.append(1)
        return submit(self, *args)

    monkeypatch.setattr(_streams.Streams, "submit", counting)
    before = _stream_folders()
    yield count
    assert _stream_folders() - before == set()


def _stream_folders():
    import tempfile

    found = set()
    for root in ("/dev/shm", tempfile.gettempdir()):
        if os.path.isdir(root):
            found |= {
                os.path.join(root, n)
                for n in os.listdir(root)
                if n.startswith("para-stream-")
            }
    return found


@pytest.mark.parametrize("return_as", MODES)
def test_long_calls_use_streams(sent, return_as):
    out = Parallel(n_jobs=2, return_as=return_as)(
        delayed(square)(i) for i in range(20000)
    )
    out = list(out)
    if return_as == "generator_unordered":
        out.sort()
    assert out == [i * i for i in range(20000)]
    assert len(sent) > 2


def test_short_calls_and_disabled_streams_use_loky_futures(sent, monkeypatch):
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert sent == []
    monkeypatch.setenv("PARA_CORE_STREAMS", "0")
    Parallel(n_jobs=2, batch_size=1)(delayed(square)(i) for i in range(50))
    assert sent == []


@pytest.mark.parametrize("return_as", MODES)
def test_task_error_in_a_stream(sent, return_as):
    with pytest.raises(ValueError, match="bad value 300") as info:
        list(
            Parallel(n_jobs=2, return_as=return_as)(
                delayed(fail_on)(i, 300) for i in range(2000)
            )
        )
    assert sent, "the failing batch went the other way"
    text = str(info.value.__cause__)
    assert "fail_on" in text and "raise ValueError" in text


def test_result_that_does_not_pickle_in_a_stream(sent):
    # As through loky's futures: the pickler's TypeError, worker traceback.
    with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock'") as info:
        Parallel(n_jobs=2)(delayed(unpicklable_result_at)(i, 500) for i in range(2000))
    assert sent
    assert "run_pickled_batch" in str(info.value.__cause__)


def test_worker_killed_in_a_stream(sent):
    with pytest.raises(WorkerTerminatedError) as info:
        Parallel(n_jobs=2)(delayed(exit_at)(i, 700, 9) for i in range(2000))
    assert sent
    msg = str(info.value)
    assert "EXIT(9)" in msg
    first, last = map(int, re.search(r"tasks #(\d+)-#(\d+)", msg).groups())
    assert first <= 700 <= last  # names the batch that held task 700
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(50)) == [
        i * i for i in range(50)
    ]


def test_timeout_in_a_stream(sent):
    # Workers started first: their start-up, slow on a busy machine, would
    # count in the first batches' timeout, which then expires before any
    # batch went to a stream.
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(2)) == [0, 1]
    with pytest.raises(TimeoutError):
        Parallel(n_jobs=2, batch_size=1, timeout=0.5)(
            delayed(sleep_from)(i, 10, 30) for i in range(20)
        )
    assert sent
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(5)) == [0, 1, 4, 9, 16]


def test_a_consumer_may_run_parallel_calls_while_a_stream_waits(sent):
    # The outer call holds streams while its consumer runs an inner call on
    # the same workers: the workers leave idle streams, the inner call runs.
    outer = Parallel(n_jobs=2, return_as="generator", batch_size=20)(
        delayed(square)(i) for i in range(400)
    )
    got = []
    for k, value in enumerate(outer):
        got.append(value)
        if k % 100 == 50:
            inner = Parallel(n_jobs=2, batch_size=1)(
                delayed(square)(j) for j in range(30)
            )
            assert inner == [j * j for j in range(30)]
            time.sleep(2 * _streams._IDLE_EXIT)  # streams left meanwhile: resent
    assert got == [i * i for i in range(400)]
    assert sent


def test_no_batch_runs_twice_when_workers_leave_idle_streams(
    sent, monkeypatch, tmp_path
):
    # A caller slow to come back after each wake-up (a busy machine): its
    # workers leave their streams meanwhile, and what they answered before
    # leaving must not be sent again.
    real_poll = select.poll

    class SlowPoller:
        def __init__(self):
            self._poller = real_poll()

        def register(self, *args):
            self._poller.register(*args)

        def poll(self, timeout=None):
            events = self._poller.poll(timeout)
            if events:
                time.sleep(2 * _streams._IDLE_EXIT)
            return events

    class SlowCaller:
        POLLIN, POLLOUT, poll = select.POLLIN, select.POLLOUT, SlowPoller

    monkeypatch.setattr(_streams, "select", SlowCaller)
    log = tmp_path / "runs"
    out = Parallel(n_jobs=2, batch_size=1)(
        delayed(log_call)(i, str(log)) for i in range(40)
    )
    assert out == list(range(40))
    assert sorted(map(int, log.read_text().split())) == list(range(40))
    assert sent


def test_dropped_generator_ends_streams_quietly(sent):
    errors = []
    previous = threading.excepthook
    threading.excepthook = errors.append
    try:
        gen = Parallel(n_jobs=2, return_as="generator", batch_size=50)(
            delayed(square)(i) for i in range(100000)
        )
        assert [next(gen) for _ in range(2000)] == [i * i for i in range(2000)]
        del gen
        assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(100)) == [
            i * i for i in range(100)
        ]
    finally:
        threading.excepthook = previous
    assert errors == []
    assert sent


def test_backend_without_streams_support_keeps_loky_futures(monkeypatch, sent):
    monkeypatch.setattr(backends, "streams_supported", lambda: False)
    out = Parallel(n_jobs=2, batch_size=1)(delayed(square)(i) for i in range(40))
    assert out == [i * i for i in range(40)] and sent == []


def test_exception_classes_made_by_value_keep_their_type(sent):
    class LocalError(Exception):
        pass

    def fail_at(i):
        if i == 1500:
            raise LocalError(f"bad {i}")
        return i

    with pytest.raises(LocalError, match="bad 1500"):
        Parallel(n_jobs=2)(delayed(fail_at)(i) for i in range(2000))
    assert sent


def test_timeout_while_big_batches_wait_for_a_hung_worker(sent):
    # The caller never blocks on a full pipe: it sees its timeout.
    blob = bytes(3_000_000)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        Parallel(n_jobs=2, batch_size=1, timeout=1)(
            delayed(hang_from)(i, 10, blob) for i in range(30)
        )
    assert time.monotonic() - start < 20
    assert sent


def test_consumer_call_while_big_results_wait_in_the_pipes(sent):
    # Results bigger than the pipes: the workers block writing them while
    # the outer generator is paused; the inner call settles them first.
    outer = Parallel(n_jobs=2, return_as="generator", batch_size=1)(
        delayed(big_result)(i, 1_500_000) for i in range(30)
    )
    sizes = []
    for k, value in enumerate(outer):
        sizes.append(len(value))
        if k == 12:
            inner = Parallel(n_jobs=2, batch_size=1)(
                delayed(square)(j) for j in range(10)
            )
            assert inner == [j * j for j in range(10)]
    assert sizes == [1_500_000] * 30
    assert sent


def test_two_generators_zipped_with_results_bigger_than_the_pipes(sent):
    # Each call's workers block writing results the other call's wait must
    # take in: whichever call waits serves the streams of both.
    g1, g2 = (
        Parallel(n_jobs=2, return_as="generator", batch_size=1)(
            delayed(big_result)(i, 1_500_000) for i in range(20)
        )
        for _ in range(2)
    )
    pairs = [(len(a), len(b)) for a, b in zip(g1, g2)]
    assert pairs == [(1_500_000, 1_500_000)] * 20
    assert sent


def test_streams_with_more_than_a_thousand_open_files(sent):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        out = Parallel(n_jobs=2)(delayed(square)(i) for i in range(20000))
        assert out == [i * i for i in range(20000)]
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert sent


_DIES_WITH_OPEN_STREAMS = """
import os, sys, time
import loky
from para_core._streams import Streams
if __name__ == "__main__":
    executor = loky.get_reusable_executor(max_workers=2)
    busy = [executor.submit(time.sleep, 3) for _ in range(2)]
    time.sleep(0.5)  # both workers busy: no one opens the streams' pipes
    streams = Streams(executor, 2)
    print(" ".join(s.folder for s in streams._streams), flush=True)
    print(" ".join(str(p) for p in executor._processes), flush=True)
    os._exit(0)  # no clean-up of any kind
"""


def test_pipes_of_a_caller_that_died_are_removed():
    # loky's resource tracker removes them once the caller and its workers
    # (which share the tracker) are gone.
    proc = subprocess.Popen(
        [sys.executable, "-c", _DIES_WITH_OPEN_STREAMS],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers: list = []
    try:
        folders = proc.stdout.readline().split()
        workers = [psutil.Process(int(p)) for p in proc.stdout.readline().split()]
        assert len(folders) == 2 and all(map(os.path.exists, folders))
        assert proc.wait(timeout=30) == 0
    finally:
        proc.stdout.close()
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
    psutil.wait_procs(workers, timeout=10)
    deadline = time.monotonic() + 20
    while any(map(os.path.exists, folders)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(map(os.path.exists, folders))
