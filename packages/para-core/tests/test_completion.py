"""The per-batch completion hook (joblib's ``BatchCompletionCallBack``)."""

from __future__ import annotations

import threading
import time

import pytest
from _helpers import fail_on, square

import para_core
from para_core import BatchCompletionCallBack, Parallel, delayed

BACKENDS = ["loky", "multiprocessing", "threading", "sequential"]
RETURN_AS = ["list", "generator", "generator_unordered"]


@pytest.fixture
def install():
    """Install a callback class for one test, then restore the default."""
    previous = []

    def _install(cls):
        previous.append(para_core.set_batch_completion_callback(cls))

    yield _install
    for cls in reversed(previous):
        para_core.set_batch_completion_callback(cls)
    assert para_core.get_batch_completion_callback() is BatchCompletionCallBack


def counting_class():
    """The "tqdm_joblib" recipe with a counter in place of the bar."""
    seen = {"tasks": 0, "calls": 0, "threads": set(), "outs": []}
    lock = threading.Lock()

    class Counting(BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            with lock:
                seen["tasks"] += self.batch_size
                seen["calls"] += 1
                seen["threads"].add(threading.get_ident())
                seen["outs"].append(args)
            return super().__call__(*args, **kwargs)

    return Counting, seen


def _n_jobs(backend):
    return 1 if backend == "sequential" else 2


@pytest.mark.parametrize("return_as", RETURN_AS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_recipe_counts_every_task(backend, return_as, install, no_leftovers):
    cls, seen = counting_class()
    install(cls)
    n = 500
    out = Parallel(n_jobs=_n_jobs(backend), backend=backend, return_as=return_as)(
        delayed(square)(i) for i in range(n)
    )
    assert sorted(out) == [i * i for i in range(n)]
    assert seen["tasks"] == n
    assert seen["calls"] >= 1
    assert all(len(args) == 1 for args in seen["outs"])  # one ``out`` per call
    if backend == "sequential":
        assert seen["calls"] == n
        assert seen["threads"] == {threading.get_ident()}
        assert [args[0] for args in seen["outs"]] == [[i * i] for i in range(n)]


def test_fixed_batch_size_is_each_instance_batch_size(install):
    sizes = []

    class Sizes(BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            sizes.append(self.batch_size)
            return super().__call__(*args, **kwargs)

    install(Sizes)
    Parallel(n_jobs=2, backend="threading", batch_size=7)(
        delayed(square)(i) for i in range(50)
    )
    assert sorted(sizes) == [1] + [7] * 7


def test_attributes_seen_by_a_subclass(install):
    seen = []

    class Look(BatchCompletionCallBack):
        def __init__(self, dispatch_timestamp, batch_size, parallel):
            super().__init__(dispatch_timestamp, batch_size, parallel)
            assert self.job is None

        def __call__(self, out):
            seen.append(
                (self.dispatch_timestamp, self.parallel, self.job, out, time.time())
            )
            return super().__call__(out)

    install(Look)
    before = time.time()
    parallel = Parallel(n_jobs=2, backend="threading")
    parallel(delayed(square)(i) for i in range(40))
    assert seen
    for stamp, owner, job, out, now in seen:
        assert before <= stamp <= now
        assert owner is parallel
        assert out is job or job is None  # the future, registered after submit
    # joblib's counters, which recipes read through ``parallel``
    assert parallel.n_completed_tasks == parallel.n_dispatched_tasks == 40
    assert parallel.n_tasks is None
    assert parallel.n_dispatched_batches == len(seen)


def test_override_without_super_still_completes(install):
    calls = []

    class Forgetful(BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            calls.append(self.batch_size)

    install(Forgetful)
    out = Parallel(n_jobs=2, backend="threading")(delayed(square)(i) for i in range(30))
    assert out == [i * i for i in range(30)]
    assert sum(calls) == 30


def test_override_that_raises_fails_the_call(install):
    class Broken(BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            raise KeyError("broken callback")

    install(Broken)
    with pytest.raises(KeyError, match="broken callback"):
        Parallel(n_jobs=2, backend="threading")(delayed(square)(i) for i in range(30))


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_failed_batch_is_reported_and_the_error_raised(backend, install, no_leftovers):
    cls, seen = counting_class()
    install(cls)
    with pytest.raises(ValueError, match="bad value 3"):
        Parallel(n_jobs=2, backend=backend, batch_size=1)(
            delayed(fail_on)(i, 3) for i in range(6)
        )
    assert seen["calls"] >= 1


def test_default_class_makes_no_object_per_batch(monkeypatch):
    made = []
    original = BatchCompletionCallBack.__init__

    def spy(self, *args):
        made.append(args)
        original(self, *args)

    monkeypatch.setattr(BatchCompletionCallBack, "__init__", spy)
    Parallel(n_jobs=2, backend="threading")(delayed(square)(i) for i in range(30))
    Parallel(n_jobs=1)(delayed(square)(i) for i in range(30))
    assert made == []


def test_setter_returns_previous_and_rejects_other_types(install):
    cls, _seen = counting_class()
    assert para_core.set_batch_completion_callback(cls) is BatchCompletionCallBack
    assert para_core.get_batch_completion_callback() is cls
    assert para_core.set_batch_completion_callback(None) is cls
    assert para_core.get_batch_completion_callback() is BatchCompletionCallBack

    class Unrelated:
        def __init__(self, dispatch_timestamp, batch_size, parallel):
            pass

    for bad in (Unrelated, cls(0.0, 1, None), "name"):
        with pytest.raises(TypeError, match=r"subclass of para_core\.BatchCompletion"):
            para_core.set_batch_completion_callback(bad)
    assert para_core.get_batch_completion_callback() is BatchCompletionCallBack


def test_instance_made_by_hand_can_be_called():
    tracker = BatchCompletionCallBack(time.time(), 3, None)
    tracker.register_job("job")
    assert tracker.job == "job"
    assert tracker("out") is None
