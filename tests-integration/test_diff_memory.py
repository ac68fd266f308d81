"""Differential tests: Memory behaves as joblib's memory user guide says.

Each scenario runs once with joblib and once with para_joblib, in separate
cache folders, and the observable behaviour (results, which calls computed,
what is in the cache) must agree.
"""

from __future__ import annotations

import io
import re
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import para_joblib


def scenario_basic(lib, location):
    log = []
    memory = lib.Memory(location, verbose=0)

    def f(x, y=1):
        log.append((x, y))
        return x + y

    g = memory.cache(f)
    out = [g(1), g(1), g(1, 1), g(x=1, y=1), g(2), g(1, y=2)]
    return out, log


def scenario_ignore(lib, location):
    log = []
    memory = lib.Memory(location, verbose=0)

    @memory.cache(ignore=["debug"])
    def f(x, debug=False):
        log.append((x, debug))
        return x

    return [f(1), f(1, debug=True), f(2, True)], log


def scenario_numpy_and_mmap(lib, location):
    log = []
    memory = lib.Memory(location, mmap_mode="r", verbose=0)

    @memory.cache
    def square(a):
        log.append(a.shape)
        return a**2

    a = np.vander(np.arange(3)).astype(float)
    first, second = square(a), square(a)
    third = square(a + 1)
    return (
        [first.tolist(), second.tolist(), third.tolist()],
        [type(first).__name__, type(second).__name__],
        log,
    )


def scenario_call_and_shelve(lib, location):
    log = []
    memory = lib.Memory(location, verbose=0)

    @memory.cache
    def f(x):
        log.append(x)
        return [x] * 3

    ref = f.call_and_shelve(4)
    value = ref.get()
    again = f.call_and_shelve(4).get()
    in_cache = f.check_call_in_cache(4)
    ref.clear()
    after_clear = f.check_call_in_cache(4)
    return value, again, in_cache, after_clear, log, type(ref).__name__


def scenario_expires_after(lib, location):
    log = []
    memory = lib.Memory(location, verbose=0)

    # Long enough that a loaded machine still calls twice within the delay.
    @memory.cache(cache_validation_callback=lib.expires_after(seconds=1.5))
    def f(x):
        log.append(x)
        return x

    f(1)
    f(1)
    time.sleep(1.7)
    f(1)
    return log


def scenario_reduce_size(lib, location):
    memory = lib.Memory(location, verbose=0)

    @memory.cache
    def f(x):
        return np.zeros(1000) + x

    for i in range(5):
        f(i)
        time.sleep(0.02)  # distinct access times, so the oldest are dropped
    memory.reduce_size(items_limit=2)
    kept = [f.check_call_in_cache(i) for i in range(5)]
    memory.reduce_size(bytes_limit=0)
    none_left = [f.check_call_in_cache(i) for i in range(5)]
    return kept, none_left


def scenario_clear_and_location_none(lib, location):
    log = []
    memory = lib.Memory(location, verbose=0)
    g = memory.cache(lambda x: log.append(x) or x)
    g(1)
    memory.clear(warn=False)
    g(1)
    nothing = lib.Memory(None, verbose=0)
    h = nothing.cache(lambda x: log.append(-x) or x)
    h(2)
    h(2)
    return log, type(h).__name__, nothing.location


def scenario_eval_and_methods(lib, location):
    memory = lib.Memory(location, verbose=0)
    g = memory.cache(pow)
    out = g(2, 10), memory.eval(pow, 3, 2), g.check_call_in_cache(2, 10)
    output, metadata = g.call(2, 11)
    return out, output, sorted(metadata)[:3]


def scenario_async_function(lib, location):
    import asyncio

    log = []
    memory = lib.Memory(location, verbose=0)

    @memory.cache
    async def fetch(x):
        log.append(x)
        await asyncio.sleep(0)
        return {"x": x}

    async def main():
        return [await fetch(1), await fetch(1), await fetch(2)]

    return asyncio.run(main()), log, type(fetch).__name__


def scenario_compressed_outputs(lib, location):
    memory = lib.Memory(location, compress=3, verbose=0)
    log = []

    @memory.cache
    def build(n):
        log.append(n)
        return np.arange(n, dtype=np.int32).reshape(-1, 2)

    return [build(10).tolist(), build(10).tolist()], log


class Model:
    def __init__(self, k, log):
        self.k = k
        self.log = log

    def predict(self, x):
        self.log.append(x)
        return self.k * x

    def __reduce__(self):  # hashed by its factor only
        return (Model, (self.k, []))


def scenario_methods_and_nested(lib, location):
    memory = lib.Memory(location, verbose=0)
    log = []
    model = Model(3, log)
    cached_predict = memory.cache(model.predict)
    out = [cached_predict(2), cached_predict(2)]

    def outer(y):
        @memory.cache
        def inner(z):
            log.append(("inner", z))
            return z + 1

        return inner(y)

    out += [outer(5), outer(5)]
    return out, log


SCENARIOS = [
    scenario_async_function,
    scenario_compressed_outputs,
    scenario_methods_and_nested,
    scenario_basic,
    scenario_ignore,
    scenario_numpy_and_mmap,
    scenario_call_and_shelve,
    scenario_expires_after,
    scenario_reduce_size,
    scenario_clear_and_location_none,
    scenario_eval_and_methods,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_memory_scenario_agrees_with_joblib(tmp_path, scenario):
    theirs = scenario(joblib, tmp_path / "joblib")
    ours = scenario(para_joblib, tmp_path / "para")
    assert ours == theirs


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    calls=st.lists(
        st.tuples(
            st.one_of(st.integers(-3, 3), st.text(max_size=2)),
            st.sampled_from(["pos", "kw"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_which_calls_compute_agrees_with_joblib(tmp_path_factory, calls):
    def replay(lib):
        folder = tmp_path_factory.mktemp(lib.__name__)
        log = []
        memory = lib.Memory(folder, verbose=0)

        @memory.cache
        def f(a, b=0):
            log.append(a)
            return (a, b)

        out = [f(a) if how == "pos" else f(a=a, b=0) for a, how in calls]
        return out, log

    assert replay(para_joblib) == replay(joblib)


_VOLATILE = re.compile(r"\d+(\.\d+)?\s*(s|min|ms)\b|0x[0-9a-f]+|/[^\s,'\"]+")


def _memory_output(lib, location):
    stream = io.StringIO()
    with redirect_stdout(stream), redirect_stderr(stream):
        memory = lib.Memory(location, verbose=1)

        @memory.cache
        def add(x, y):
            return x + y

        add(1, 2)
        add(1, 2)
    return [
        _VOLATILE.sub("<v>", line).replace("joblib", "LIB")
        for line in stream.getvalue().splitlines()
        if line.startswith(("[Memory]", "__"))
    ]


def test_verbose_memory_lines_agree(tmp_path):
    theirs = _memory_output(joblib, tmp_path / "j")
    ours = _memory_output(para_joblib, tmp_path / "p")
    assert theirs, "joblib printed no [Memory] line"
    assert ours == theirs


def _layout(lib, location):
    memory = lib.Memory(location, verbose=0)

    @memory.cache
    def layout_probe(x):
        return x

    layout_probe(3)
    layout_probe(4)
    root = Path(location)
    # Entry folders are named by the call hash, which may differ (xxh3).
    return sorted(
        re.sub(r"/[0-9a-f]{16,}(?=/|$)", "/<hash>", str(p.relative_to(root)))
        for p in root.rglob("*")
    )


@pytest.mark.parametrize("as_str", [True, False], ids=["str", "pathlike"])
def test_on_disk_layout_agrees(tmp_path, as_str):
    def location(name):
        return str(tmp_path / name) if as_str else tmp_path / name

    theirs = _layout(joblib, location("j"))
    ours = _layout(para_joblib, location("p"))
    assert ours == theirs
    assert any(p.endswith("layout_probe/func_code.py") for p in ours)
    assert sum(p.endswith("/output.pkl") for p in ours) == 2
