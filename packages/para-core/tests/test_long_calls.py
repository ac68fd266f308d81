"""Loky calls that run past their first ``pre_dispatch`` batches.

Failures, timeouts and paused generators behave the same in the middle of a
long call as at its start; results bigger than the pipes never stall a call
whose consumer runs another call meanwhile.
"""

from __future__ import annotations

import re
import threading

import pytest
from _helpers import (
    big_result,
    exit_at,
    fail_on,
    hang_from,
    square,
    unpicklable_result_at,
)

from para_core import Parallel, WorkerTerminatedError, delayed

pytestmark = pytest.mark.usefixtures("no_leftovers")

MODES = ["list", "generator", "generator_unordered"]


@pytest.mark.parametrize("return_as", MODES)
def test_task_error_late_in_a_long_call(return_as):
    with pytest.raises(ValueError, match="bad value 1300") as info:
        list(
            Parallel(n_jobs=2, return_as=return_as)(
                delayed(fail_on)(i, 1300) for i in range(2000)
            )
        )
    text = str(info.value.__cause__)
    assert "fail_on" in text and "raise ValueError" in text


def test_result_that_does_not_pickle_late_in_a_long_call():
    with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock'") as info:
        Parallel(n_jobs=2)(delayed(unpicklable_result_at)(i, 1500) for i in range(2000))
    assert "run_pickled_batch" in str(info.value.__cause__)


def test_worker_killed_late_in_a_long_call():
    # loky fails every pending batch when a worker dies: the one reported
    # is the first the caller takes, not always the one holding task 1500.
    with pytest.raises(WorkerTerminatedError) as info:
        Parallel(n_jobs=2)(delayed(exit_at)(i, 1500, 9) for i in range(2000))
    msg = str(info.value)
    assert "EXIT(9)" in msg
    assert re.search(r"tasks? #\d+", msg)
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(50)) == [
        i * i for i in range(50)
    ]


def test_exception_classes_made_by_value_keep_their_type():
    class LocalError(Exception):
        pass

    def fail_at(i):
        if i == 1500:
            raise LocalError(f"bad {i}")
        return i

    with pytest.raises(LocalError, match="bad 1500"):
        Parallel(n_jobs=2)(delayed(fail_at)(i) for i in range(2000))


def test_timeout_while_big_batches_wait_for_a_hung_worker():
    blob = bytes(3_000_000)
    with pytest.raises(TimeoutError):
        Parallel(n_jobs=2, batch_size=1, timeout=1)(
            delayed(hang_from)(i, 10, blob) for i in range(30)
        )
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(5)) == [0, 1, 4, 9, 16]


def test_consumer_call_while_big_results_wait():
    # The outer generator is paused with results bigger than a pipe on the
    # way; its consumer runs another call on the same workers.
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


def test_two_generators_zipped_with_big_results():
    g1, g2 = (
        Parallel(n_jobs=2, return_as="generator", batch_size=1)(
            delayed(big_result)(i, 1_500_000) for i in range(20)
        )
        for _ in range(2)
    )
    pairs = [(len(a), len(b)) for a, b in zip(g1, g2)]
    assert pairs == [(1_500_000, 1_500_000)] * 20


def test_dropped_generator_ends_quietly():
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
