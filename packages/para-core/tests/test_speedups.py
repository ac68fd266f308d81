"""The C accelerator and its Python twins: same behaviour, case by case.

Every test here runs once per implementation. The whole suite also runs
with ``PARA_CORE_PURE_PYTHON=1`` (``hatch run test-core:pure``), where
para_core uses the Python code throughout.
"""

from __future__ import annotations

import copy
import gc
import inspect
import os
import pickle
import subprocess
import sys
import weakref

import cloudpickle
import pytest
from _helpers import Box, add, square

import para_core
from para_core import Parallel, _compact, _delayed, _dispatch
from para_core._accel import speedups

PURE = os.environ.get("PARA_CORE_PURE_PYTHON", "0") not in ("", "0")


def test_the_accelerator_is_used_unless_disabled():
    # The test environments build it (hatch_build.py): a silent fall-back to
    # Python there would hide a broken build.
    if PURE:
        assert speedups is None
        assert para_core.delayed is _delayed.delayed_py
        assert _compact.take_compact is _compact.take_compact_py
    else:
        assert speedups is not None, "para_core._speedups was not compiled"
        assert type(para_core.delayed) is speedups.Delayer
        assert _compact.take_compact is speedups.take_compact


IMPLEMENTATIONS = ["python"] + ([] if speedups is None else ["c"])


@pytest.fixture(params=IMPLEMENTATIONS)
def take_compact(request):
    if request.param == "python":
        return _compact.take_compact_py
    return speedups.take_compact


@pytest.fixture(params=IMPLEMENTATIONS)
def delayed(request):
    d = _delayed.delayed_py if request.param == "python" else para_core.delayed
    yield d
    _delayed._forget_delayed()


# -- take_compact ---------------------------------------------------------------


def test_take_compact_stops_at_what_does_not_fit(take_compact):
    END, FULL = _compact.END, _compact.FULL
    d = _delayed.delayed_py
    out: list = []
    it = iter([d(square)(i) for i in range(5)])
    assert take_compact(it, square, True, 3, out) is FULL
    assert take_compact(it, square, True, 3, out) is END
    assert out == [0, 1, 2, 3, 4]
    odd = d(add)(1, 2)
    it = iter([d(square)(7), odd, d(square)(8)])
    out = []
    assert take_compact(it, square, True, 10, out) is odd  # read, not added
    assert out == [7] and next(it) == d(square)(8)
    # Argument tuples of any arity in the tuples form; kwargs end the run.
    out = []
    items = [d(add)(1), d(add)(1, 2), d(add)(1, b=2)]
    assert take_compact(iter(items), add, False, 10, out) is items[2]
    assert out == [(1,), (1, 2)]
    # Another function ends the run; size 0 reads nothing.
    other = d(add)(3)
    assert take_compact(iter([d(square)(1), other]), square, True, 5, []) is other
    it = iter([d(square)(1)])
    assert take_compact(it, square, True, 0, []) is FULL
    assert next(it) == d(square)(1)


def test_take_compact_never_iterates_arguments_that_are_not_tuples(take_compact):
    args = iter([5])
    item = (square, args, {})
    assert take_compact(iter([item]), square, True, 10, []) is item
    assert list(args) == [5]  # untouched: f(*args) must see it whole


def test_take_compact_matches_bound_methods_by_equality(take_compact):
    box = Box(3)
    out: list = []
    items = [(box.times, (i,), {}) for i in range(4)]  # four method objects
    assert take_compact(iter(items), box.times, True, 10, out) is _compact.END
    assert out == [0, 1, 2, 3]
    stranger = (Box(3).times, (9,), {})
    assert take_compact(iter([stranger]), box.times, True, 10, []) is stranger


def test_take_compact_lets_the_input_s_errors_through(take_compact):
    def tasks():
        yield (square, (1,), {})
        raise KeyError("from the generator")

    out: list = []
    with pytest.raises(KeyError, match="from the generator"):
        take_compact(tasks(), square, True, 10, out)
    assert out == [1]
    with pytest.raises(ValueError):
        take_compact(iter([]), square, True, -1, [])


# -- delayed ----------------------------------------------------------------------


def test_delayed_builds_tasks(delayed):
    d = delayed(add)
    assert d(1) == (add, (1,), {})
    assert d(1, b=2) == (add, (1,), {"b": 2})
    assert delayed(function=pow)(2, 5) == (pow, (2, 5), {})
    # Each call gets its own kwargs dict: a consumer may change it.
    first, second = d(1), d(2)
    assert first[2] is not second[2]


def test_delayed_carries_the_function_s_identity(delayed):
    d = delayed(add)
    assert d.__name__ == "add" and d.__qualname__ == "add"
    assert d.__wrapped__ is add and d.__module__ == add.__module__
    assert str(inspect.signature(d)) == "(a, b=0)"
    assert str(inspect.signature(delayed)) == (
        "(function: 'Callable[..., Any]') -> 'Callable[..., tuple]'"
    )
    assert delayed.__doc__.startswith("Capture a call")


def test_delayed_keeps_the_last_function_s_wrapper_only(delayed):
    assert delayed(add) is delayed(add)
    box = Box(2)
    # Bound methods are new objects each time: not kept, still right.
    assert delayed(box.times) is not delayed(box.times)
    assert delayed(box.times)(4) == (box.times, (4,), {})

    def local(x):
        return x

    ref = weakref.ref(local)
    assert delayed(local)(1)[0] is local
    _delayed._forget_delayed()
    del local
    gc.collect()
    assert ref() is None, "the kept wrapper held the function after the call"


def test_delayed_and_its_wrappers_are_weakly_referable(delayed):
    wrapper = delayed(add)
    ref = weakref.ref(wrapper)
    assert ref() is wrapper
    assert weakref.ref(delayed)() is delayed
    del wrapper
    _delayed._forget_delayed()
    gc.collect()
    assert ref() is None


def test_delayed_errors_are_python_s(delayed):
    with pytest.raises(TypeError, match=r"missing 1 required positional argument"):
        delayed()
    with pytest.raises(TypeError, match=r"takes 1 positional argument but 2 were"):
        delayed(add, 1)
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'func'"):
        delayed(func=add)


def test_delayed_wrappers_bind_as_methods(delayed):
    class Holder:
        task = delayed(add)

    h = Holder()
    assert h.task(1) == (add, (h, 1), {})
    assert Holder.task(1) == (add, (1,), {})


def test_delayed_and_its_wrappers_pickle(delayed):
    assert pickle.loads(pickle.dumps(para_core.delayed)) is para_core.delayed
    assert copy.deepcopy(para_core.delayed) is para_core.delayed
    # Wrappers go by value with cloudpickle (nested Parallel calls ship them).
    d = cloudpickle.loads(cloudpickle.dumps(delayed(add)))
    assert d(1, b=5) == (add, (1,), {"b": 5}) and d.__name__ == "add"
    if delayed is not _delayed.delayed_py:  # closures do not pickle by reference
        d = pickle.loads(pickle.dumps(delayed(add)))
        assert d(2) == (add, (2,), {}) and d.__wrapped__ is add


def test_parallel_runs_on_either_implementation(delayed, monkeypatch):
    # The dispatch loop with this implementation's reader, on real workers.
    reader = _compact.take_compact_py
    if delayed is not _delayed.delayed_py:
        reader = speedups.take_compact
    monkeypatch.setattr(_dispatch, "take_compact", reader)
    box = Box(5)
    tasks = [delayed(square)(i) for i in range(300)]
    tasks += [delayed(box.times)(i) for i in range(300)]
    tasks += [delayed(add)(i, b=1) for i in range(10)]
    expected = [square(i) for i in range(300)] + [5 * i for i in range(300)]
    expected += [i + 1 for i in range(10)]
    for return_as in ("list", "generator"):
        out = Parallel(n_jobs=2, return_as=return_as)(iter(tasks))
        assert list(out) == expected


# -- the C objects under re-entrancy and the collector ---------------------------


def _keeper_make(function):
    # A wrapper that does not hold its function: the Delayer's cache then holds
    # the last reference, so replacing it frees the function.
    name = function.__name__
    return lambda: name


@pytest.mark.skipif(speedups is None, reason="the C accelerator is not used")
def test_delayer_cache_stays_matched_when_freeing_runs_code():
    d = speedups.Delayer(_keeper_make)
    seen = []

    def second():
        pass

    class CallsBack:
        def __del__(self):
            # Runs while the Delayer replaces its kept function.
            seen.append(d(second)())

    def closure():
        held = CallsBack()

        def first():
            return held

        return first

    first = closure()

    def third():
        pass

    d(first)
    del first
    assert d(third)() == "third"
    assert seen == ["second"]
    # Whichever call's pair is kept, it is a matched one: each function gets
    # its own wrapper back.
    assert d(second)() == "second"
    assert d(third)() == "third"


_CLEARED_BY_THE_COLLECTOR = """
import gc, weakref
from para_core._accel import speedups

def make(function):
    return speedups.DelayedFunction(function)

def fresh():
    def f(x):
        return x
    return f

class Later:
    # Created by a finalizer during a collection, outside the garbage: freed
    # when the collector clears its holder, it calls an object already cleared.
    def __init__(self, ref):
        self.ref = ref
    def __del__(self):
        target = self.ref()
        if target is not None:
            result.append(target(fresh()) if KIND == "delayer" else target(7))

class Finalizer:
    def __init__(self, target):
        self.target = target
    def __del__(self):
        self.target.later = Later(weakref.ref(self.target))

result = []
for KIND in ("delayer", "wrapper"):
    for _ in range(20):
        obj = speedups.Delayer(make) if KIND == "delayer" else make(fresh())
        obj.me = obj
        obj.finalizer = Finalizer(obj)
        del obj
        gc.collect()
print(len(result), sorted({type(r).__name__ for r in result}))
"""


@pytest.mark.skipif(speedups is None, reason="the C accelerator is not used")
def test_objects_cleared_by_the_collector_still_work(tmp_path):
    # A subprocess: before the fix, the collector's clearing left NULL members
    # that a later call dereferenced (a segmentation fault).
    script = tmp_path / "cleared.py"
    script.write_text(_CLEARED_BY_THE_COLLECTOR)
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    count, kinds = proc.stdout.split(" ", 1)
    assert int(count) > 0, "the collector never cleared a reachable object"
    assert kinds.strip() == "['DelayedFunction', 'tuple']"
