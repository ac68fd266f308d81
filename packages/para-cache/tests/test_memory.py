"""The Memory suite, run unchanged on every store (see conftest.STORES)."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import pickle
import time
import warnings

import pytest

from para_cache import (
    CacheWarning,
    MemorizedFunc,
    MemorizedResult,
    Memory,
    NotMemorizedFunc,
    NotMemorizedResult,
    expires_after,
)


class Counter:
    """Records every real execution of a cached function."""

    def __init__(self) -> None:
        self.calls: list = []

    def __call__(self, *args):
        self.calls.append(args)


def make_f(counter):
    def f(x, y=1, *, z=0):
        counter(x, y, z)
        return x + y + z

    return f


def test_hit_and_miss(store):
    counter = Counter()
    mem = store.memory()
    f = mem.cache(make_f(counter))
    assert isinstance(f, MemorizedFunc)
    assert f(1) == 2
    assert f(1) == 2
    assert f(2) == 3
    assert counter.calls == [(1, 1, 0), (2, 1, 0)]
    assert len(store.entries()) == 2


def test_call_spellings_share_an_entry(store):
    counter = Counter()
    f = store.memory().cache(make_f(counter))
    f(1)
    f(1, 1)
    f(x=1)
    f(1, y=1)
    f(y=1, x=1, z=0)
    assert len(counter.calls) == 1
    f(1, z=2)
    assert len(counter.calls) == 2


def test_ignore(store):
    counter = Counter()

    def g(x, verbose=False):
        counter(x, verbose)
        return x

    g = store.memory().cache(ignore=["verbose"])(g)
    g(1, verbose=True)
    g(1, verbose=False)
    assert counter.calls == [(1, True)]


def test_ignore_errors(store):
    mem = store.memory()

    def g(x):
        return x

    with pytest.raises(ValueError, match="ignore_lst must be a list"):
        mem.cache(g, ignore="x")(1)
    with pytest.raises(ValueError, match="argument 'nope' is not defined"):
        mem.cache(g, ignore=["nope"])(1)


def test_bad_calls_raise_like_the_function(store):
    f = store.memory().cache(make_f(Counter()))
    with pytest.raises(ValueError, match="Wrong number of arguments"):
        f()
    with pytest.raises(ValueError, match="Too many arguments"):
        f(1, 2, 3)
    with pytest.raises(ValueError, match="both as positional and as keyword"):
        f(1, x=1)


def test_varargs_and_kwargs(store):
    counter = Counter()

    def h(a, *args, **kwargs):
        counter(a, args, kwargs)
        return (a, args, kwargs)

    h = store.memory().cache(h)
    assert h(1, 2, 3, k=4) == (1, (2, 3), {"k": 4})
    h(1, 2, 3, k=4)
    h(1, 2, k=4)
    assert len(counter.calls) == 2


def test_call_returns_metadata_and_recomputes(store):
    counter = Counter()
    f = store.memory().cache(make_f(counter))
    assert f(2, 3) == 5
    out, meta = f.call(2, y=3)
    assert out == 5
    assert set(meta) == {"duration", "input_args", "time"}
    assert meta["input_args"] == {"x": "2", "y": "3", "z": "0"}
    assert len(counter.calls) == 2
    assert f(2, 3) == 5
    assert len(counter.calls) == 2


def test_call_and_shelve(store):
    counter = Counter()
    f = store.memory().cache(make_f(counter))
    ref = f.call_and_shelve(4)
    assert isinstance(ref, MemorizedResult)
    assert ref.get() == 5
    ref2 = pickle.loads(pickle.dumps(ref))
    assert ref2.get() == 5
    assert f.call_and_shelve(4).get() == 5
    assert len(counter.calls) == 1
    assert "MemorizedResult(location=" in repr(ref)
    ref.clear()
    with pytest.raises(KeyError):
        ref2.get()
    assert not f.check_call_in_cache(4)


def test_check_call_in_cache_and_clear(store):
    counter = Counter()
    f = store.memory().cache(make_f(counter))
    assert not f.check_call_in_cache(1)
    f(1)
    assert f.check_call_in_cache(1)
    assert f.check_call_in_cache(x=1, y=1)
    assert counter.calls == [(1, 1, 0)]
    f.clear(warn=False)
    assert not f.check_call_in_cache(1)
    f(1)
    assert len(counter.calls) == 2


def test_memory_clear_and_eval(store):
    counter = Counter()
    mem = store.memory()
    func = make_f(counter)
    assert mem.eval(func, 3) == 4
    assert mem.eval(func, 3) == 4
    assert len(counter.calls) == 1
    mem.clear(warn=False)
    assert store.entries() == []
    assert mem.eval(func, 3) == 4
    assert len(counter.calls) == 2


def test_cache_validation_callback_and_expires_after(store):
    counter = Counter()
    mem = store.memory()
    seen = []

    def never(metadata):
        seen.append(metadata)
        return False

    f = mem.cache(make_f(counter), cache_validation_callback=never)
    f(1)
    f(1)
    assert len(counter.calls) == 2
    assert "duration" in seen[0]
    g = mem.cache(make_f(counter), cache_validation_callback=expires_after(hours=1))
    g(7)
    g(7)
    assert len(counter.calls) == 3
    h = mem.cache(
        make_f(counter), cache_validation_callback=expires_after(milliseconds=1)
    )
    h(8)
    time.sleep(0.01)
    h(8)
    assert len(counter.calls) == 5
    with pytest.raises(ValueError, match="needs to be callable"):
        mem.cache(make_f(counter), cache_validation_callback=1)


def test_reduce_size(store):
    mem = store.memory()
    f = mem.cache(make_f(Counter()))
    for i in range(5):
        f(i)
    assert len(store.entries()) == 5
    mem.reduce_size()  # no limit: no-op
    assert len(store.entries()) == 5
    mem.reduce_size(items_limit=3)
    assert len(store.entries()) == 3
    mem.reduce_size(bytes_limit="1M")
    assert len(store.entries()) == 3
    mem.reduce_size(bytes_limit=1)
    assert store.entries() == []
    f(1)
    mem.reduce_size(age_limit=datetime.timedelta(days=1))
    assert len(store.entries()) == 1
    with pytest.raises(ValueError, match="positive timedelta"):
        mem.reduce_size(age_limit=datetime.timedelta(days=-1))
    mem.reduce_size(age_limit=datetime.timedelta(0))
    assert store.entries() == []


_SCALE_CALLS: list = []


class _Thing:
    # Module level: ``self`` is hashed with the arguments, and an instance of
    # a class defined in a function cannot be (joblib's PicklingError).
    def __init__(self, k):
        self.k = k

    def scale(self, x):
        _SCALE_CALLS.append(("scale", x))
        return self.k * x


def test_methods_lambdas_nested_and_partials(store):
    mem = store.memory()
    _SCALE_CALLS.clear()
    t = _Thing(3)
    scaled = mem.cache(t.scale)
    assert scaled(2) == 6
    assert scaled(2) == 6
    lam = mem.cache(lambda x: x * 10)
    assert lam(2) == 20
    assert lam(2) == 20
    part = mem.cache(functools.partial(pow, 2))
    assert part(5) == 32
    assert part(5) == 32
    assert _SCALE_CALLS == [("scale", 2)]
    assert len(store.entries()) == 3


def test_async_functions(store):
    mem = store.memory()
    counter = Counter()

    async def coro(x):
        counter(x)
        await asyncio.sleep(0)
        return x * 2

    cached = mem.cache(coro)
    assert asyncio.run(cached(4)) == 8
    assert asyncio.run(cached(4)) == 8
    assert counter.calls == [(4,)]
    out, meta = asyncio.run(cached.call(4))
    assert out == 8 and "duration" in meta
    ref = asyncio.run(cached.call_and_shelve(5))
    assert ref.get() == 10


def test_decorator_forms(store):
    mem = store.memory()

    @mem.cache
    def bare(x):
        return x

    @mem.cache(verbose=0)
    def called(x):
        return x

    assert bare(1) == 1 and called(2) == 2
    again = mem.cache(bare)
    assert again.func is bare.func
    assert "Memoized version of" in bare.__doc__
    assert bare.__name__ == "bare"


def test_unpicklable_output_warns_and_returns(store):
    from para_cache import CacheWarning

    mem = store.memory()

    @mem.cache
    def make_gen(n):
        return (i for i in range(n))

    with pytest.warns(CacheWarning):
        gen = make_gen(2)
    assert list(gen) == [0, 1]


def test_code_change_invalidates(store, caplog, tmp_path):
    mem = store.memory(verbose=1)
    source_a = "def target(x):\n    return x + 1\n"
    source_b = "def target(x):\n    return x + 2\n"
    namespace: dict = {}
    path = tmp_path / "modsrc.py"
    path.write_text(source_a)
    exec(compile(source_a, str(path), "exec"), namespace)
    f = mem.cache(namespace["target"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert f(1) == 2
    path.write_text(source_b)
    namespace2: dict = {}
    exec(compile(source_b, str(path), "exec"), namespace2)
    g = mem.cache(namespace2["target"])
    assert g.func_id == f.func_id
    with caplog.at_level(logging.WARNING):
        assert g(1) == 3
    assert "Clearing function cache identified by" in caplog.text


def test_verbose_lines(store, capsys):
    mem = store.memory(verbose=1)

    @mem.cache
    def add(a, b=2):
        return a + b

    add(1)
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "_" * 80
    assert lines[1].startswith("[Memory] Calling ")
    assert lines[1].endswith(".add...")
    assert lines[2] == "add(1)"
    assert lines[3].endswith("add - 0.0s, 0.0min")
    assert len(lines[3]) == 80
    add(1)
    assert capsys.readouterr().out == ""
    mem5 = store.memory(verbose=5)
    mem5.cache(add.func)(1)
    assert "[Memory]" in capsys.readouterr().out


def test_no_location_is_transparent():
    mem = Memory(None)
    counter = Counter()
    f = mem.cache(make_f(counter))
    assert isinstance(f, NotMemorizedFunc)
    f(1)
    f(1)
    assert len(counter.calls) == 2
    assert f.call(1) == (2, {})
    ref = f.call_and_shelve(1)
    assert isinstance(ref, NotMemorizedResult)
    assert ref.get() == 2
    assert pickle.loads(pickle.dumps(ref)).get() == 2
    ref.clear()
    with pytest.raises(KeyError):
        ref.get()
    assert not f.check_call_in_cache(1)
    assert mem.eval(abs, -3) == 3
    mem.reduce_size(items_limit=0)
    mem.clear(warn=False)
    assert repr(mem) == "Memory(location=None)"

    async def coro(x):
        return x

    assert asyncio.run(mem.cache(coro).call_and_shelve(3)).get() == 3


def test_memory_pickles(store):
    mem = store.memory()
    f = mem.cache(make_f(Counter()))
    f(1)
    if store.kind != "fsspec-memory":
        mem2 = pickle.loads(pickle.dumps(mem))
        assert repr(mem2) == repr(mem)


def test_numpy_outputs_and_mmap(store):
    np = pytest.importorskip("numpy")
    mem = store.memory(mmap_mode="r" if store.kind != "fsspec-memory" else None)
    counter = Counter()

    @mem.cache
    def make(n):
        counter(n)
        return np.arange(n, dtype="f8")

    # Large enough for para-persist to store it raw (small arrays go inline).
    a = make(100_000)
    b = make(100_000)
    np.testing.assert_array_equal(a, np.arange(100_000.0))
    np.testing.assert_array_equal(b, a)
    assert len(counter.calls) == 1
    if store.kind != "fsspec-memory":
        assert isinstance(b, np.memmap)
        assert isinstance(a, np.memmap)  # same type on the first call
    arg = np.ones(10)

    @mem.cache
    def total(arr):
        counter("total")
        return float(arr.sum())

    assert total(arg) == 10.0
    assert total(arg.copy()) == 10.0
    assert counter.calls.count(("total",)) == 1
    del a, b


def test_compress(store):
    mem = store.memory(compress=3)
    f = mem.cache(make_f(Counter()))
    assert f(5) == 6
    assert f(5) == 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        store.memory(compress=True, mmap_mode="r")
    messages = [str(w.message) for w in caught]
    assert "Compressed results cannot be memmapped" in messages


def _returns_a_lock(x):
    import threading

    return x, threading.Lock()  # pickles in no way


def test_an_output_that_cannot_be_stored_warns_and_is_still_returned(tmp_path):
    cached = Memory(tmp_path, verbose=0).cache(_returns_a_lock)
    with pytest.warns(CacheWarning, match="Unable to cache to disk"):
        value, lock = cached(3)
    assert value == 3 and hasattr(lock, "acquire")
    with pytest.warns(CacheWarning, match="Unable to cache to disk"):
        cached(3)  # nothing was stored: computed (and refused) again
