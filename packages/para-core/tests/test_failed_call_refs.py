"""A failed call lets go of its arguments as soon as its exception is dropped.

A raised exception keeps the frames it went through; the engine's frames,
futures and state must not keep the call's arguments alive after that (in a
reference cycle that only the garbage collector would free, or in futures a
backend keeps), or a large array passed to a failing call would live on.
"""

from __future__ import annotations

import gc
import sys
import traceback
import weakref

import pytest
from _helpers import Payload, fail_with

from para_core import Parallel, delayed

pytestmark = pytest.mark.usefixtures("no_leftovers")

BACKENDS = ["loky", "multiprocessing", "threading", "sequential"]


@pytest.fixture
def no_gc():
    # Without the collector, only plain reference counts can free objects:
    # what a cycle holds stays held and the test sees it.
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    yield
    if enabled:
        gc.enable()


def _failing_call(payload, backend, return_as):
    n_jobs = 1 if backend == "sequential" else 2
    out = Parallel(n_jobs=n_jobs, backend=backend, return_as=return_as)(
        delayed(fail_with)(payload, i, 2) for i in range(40)
    )
    list(out)


@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_arguments_released_once_the_error_is_dropped(backend, return_as, no_gc):
    payload = Payload()
    before = sys.getrefcount(payload)
    try:
        _failing_call(payload, backend, return_as)
    except ValueError:
        pass
    else:
        raise AssertionError("the call did not fail")
    assert sys.getrefcount(payload) == before
    alive = weakref.ref(payload)
    del payload
    assert alive() is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_error_kept_by_the_user_keeps_its_traceback(backend, no_gc):
    payload = Payload()
    alive = weakref.ref(payload)
    try:
        _failing_call(payload, backend, "list")
    except ValueError as exc:
        error = exc
    del payload
    text = "".join(traceback.format_exception(error))
    assert "ValueError: bad value 2" in text
    assert "run_list" in text  # the caller's side
    if backend in ("threading", "sequential"):
        # the task's own frame, with its arguments, as in a plain loop
        names = [
            frame.f_code.co_name for frame, _ in traceback.walk_tb(error.__traceback__)
        ]
        assert names[-1] == "fail_with"
        assert alive() is not None
    else:  # the worker's traceback, as text
        assert "fail_with" in str(error.__cause__)
    del error
    assert alive() is None
