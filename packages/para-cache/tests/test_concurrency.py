"""Crash safety: concurrent writers, truncated entries, clearing beside readers."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import warnings

import psutil
import pytest

import para_persist
from para_cache import CacheWarning, Memory

N_PROCS = 8
N_ROUNDS = 20


def slow_square(x):
    # Long enough for all workers to be inside the miss path together.
    time.sleep(0.02)
    return {"x": x, "square": x * x, "payload": list(range(x % 7 + 100))}


def _worker(location, barrier, rounds, queue):
    mem = Memory(location, verbose=0)
    cached = mem.cache(slow_square)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = []
        for r in range(rounds):
            barrier.wait(timeout=60)
            results.append(cached(r))
    queue.put((os.getpid(), results, [str(w.message) for w in caught]))


def _entries(root):
    found = []
    for dirpath, _, names in os.walk(root):
        if "output.pkl" in names:
            found.append((dirpath, sorted(names)))
    return found


def test_many_processes_same_call(tmp_path):
    location = str(tmp_path / "cache")
    Memory(location, verbose=0)  # create the root once
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    barrier = ctx.Barrier(N_PROCS)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(location, barrier, N_ROUNDS, queue))
        for _ in range(N_PROCS)
    ]
    for p in procs:
        p.start()
    reports = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for _, results, messages in reports:
        assert messages == []
        assert results == [slow_square(r) for r in range(N_ROUNDS)]
    entries = _entries(os.path.join(location, "joblib"))
    assert len(entries) == N_ROUNDS  # one entry per distinct call
    for dirpath, names in entries:
        assert names == ["metadata.json", "output.pkl"]
        value = para_persist.load(os.path.join(dirpath, "output.pkl"))
        assert value == slow_square(value["x"])
    leftovers = [
        os.path.join(d, n)
        for d, dirs, names in os.walk(location)
        for n in [*dirs, *names]
        if n.endswith(".tmp")
    ]
    assert leftovers == []
    assert psutil.Process().children(recursive=True) == []
    # Every entry is readable as a hit by a fresh Memory.
    cached = Memory(location, verbose=0).cache(slow_square)
    for r in range(N_ROUNDS):
        assert cached.check_call_in_cache(r)


def test_truncated_entry_is_recomputed(tmp_path):
    calls = []

    def produce(n):
        calls.append(n)
        return list(range(n))

    mem = Memory(str(tmp_path), verbose=0)
    cached = mem.cache(produce)
    assert cached(1000) == list(range(1000))
    [(entry, _)] = _entries(str(tmp_path / "joblib"))
    output = os.path.join(entry, "output.pkl")
    size = os.path.getsize(output)
    with open(output, "r+b") as f:
        f.truncate(size // 2)
    with pytest.warns(CacheWarning, match="Corrupted cache entry"):
        assert cached(1000) == list(range(1000))
    assert len(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached(1000) == list(range(1000))
    assert len(calls) == 2
    assert os.path.getsize(output) == size


def test_garbage_entry_is_recomputed(tmp_path):
    mem = Memory(str(tmp_path), verbose=0)
    cached = mem.cache(abs)
    assert cached(-3) == 3
    [(entry, _)] = _entries(str(tmp_path / "joblib"))
    with open(os.path.join(entry, "output.pkl"), "wb") as f:
        f.write(b"not a pickle at all")
    logged = []
    cached.warn = logged.append  # joblib's tests watch the logger this way
    with pytest.warns(CacheWarning):
        assert cached(-3) == 3
    assert len(logged) == 1
    assert logged[0].startswith("Exception while loading results for abs(-3)")
    ref = cached.call_and_shelve(-3)
    assert ref.get() == 3


def test_reduce_size_beside_readers(tmp_path):
    mem = Memory(str(tmp_path), verbose=0)

    def value(i):
        return [i] * 1000

    cached = mem.cache(value)
    for i in range(20):
        cached(i)
    errors = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                for i in range(20):
                    assert cached(i) == [i] * 1000
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for _ in range(30):
            mem.reduce_size(items_limit=5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert errors == []
    assert [
        str(w.message) for w in caught if issubclass(w.category, CacheWarning)
    ] == []
    assert not any(t.is_alive() for t in threads)
