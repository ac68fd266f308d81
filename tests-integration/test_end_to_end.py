"""The four packages together, through para_joblib only.

A parallel computation over a memory-mapped array, whose function is cached
with Memory and whose result is dumped and loaded back.
"""

from __future__ import annotations

import numpy as np
import pytest

import para_joblib as joblib


def _column_stats(data, columns):
    # Runs in a worker: ``data`` reaches it as a read-only memory map.
    block = data[:, columns]
    return columns, block.mean(axis=0), block.std(axis=0), not data.flags.writeable


def summarize(data, n_jobs):
    chunks = np.array_split(np.arange(data.shape[1]), 4)
    out = joblib.Parallel(n_jobs=n_jobs, max_nbytes="1M")(
        joblib.delayed(_column_stats)(data, cols) for cols in chunks
    )
    means = np.concatenate([o[1] for o in out])
    stds = np.concatenate([o[2] for o in out])
    return {"mean": means, "std": stds, "read_only_in_workers": [o[3] for o in out]}


@pytest.mark.parametrize("compress", [0, 3, ("zstd", 3)])
def test_parallel_over_memmap_cached_dumped_loaded(workdir, shm_snapshot, compress):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((2_000, 200))  # 3.2 MB: travels by shared memory
    calls = []

    def computed(data, n_jobs):
        calls.append(n_jobs)
        return summarize(data, n_jobs)

    memory = joblib.Memory(workdir / "cache", verbose=0)
    cached = memory.cache(computed, ignore=["n_jobs"])

    first = cached(data, n_jobs=2)
    second = cached(data, n_jobs=1)  # n_jobs ignored: same entry
    assert calls == [2]
    np.testing.assert_allclose(first["mean"], data.mean(axis=0))
    np.testing.assert_allclose(first["std"], data.std(axis=0))
    assert first["read_only_in_workers"] == [True] * 4
    np.testing.assert_array_equal(first["mean"], second["mean"])

    path = workdir / "stats.pkl"
    written = joblib.dump(first, path, compress=compress)
    assert [str(p) for p in written] == [str(path)]
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded["mean"], first["mean"])
    np.testing.assert_array_equal(loaded["std"], first["std"])

    memory.clear(warn=False)
    del data  # para keeps its shared copy for later calls while it lives
    assert not shm_snapshot()


def test_memmapped_input_file_is_passed_by_reference(workdir):
    data = np.arange(400_000, dtype=np.float64).reshape(1000, 400)
    joblib.dump(data, workdir / "data.pkl")
    mapped = joblib.load(workdir / "data.pkl", mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    sums = joblib.Parallel(n_jobs=2)(
        joblib.delayed(np.sum)(mapped[i::4]) for i in range(4)
    )
    assert sum(sums) == data.sum()
    del mapped


def test_workers_fill_a_shared_output(workdir):
    out = np.memmap(workdir / "out.mmap", dtype=np.float64, shape=(8, 1000), mode="w+")

    def fill(target, i):
        target[i] = i

    joblib.Parallel(n_jobs=2)(joblib.delayed(fill)(out, i) for i in range(8))
    np.testing.assert_array_equal(out[:, 0], np.arange(8.0))
    assert out.sum() == 1000 * sum(range(8))
    del out


def test_large_results_come_back_as_ordinary_writable_arrays():
    def make(i):
        return np.full(300_000, i, dtype=np.float64)  # 2.4 MB each

    results = joblib.Parallel(n_jobs=2)(joblib.delayed(make)(i) for i in range(4))
    for i, arr in enumerate(results):
        assert arr.flags.writeable
        arr += 1  # the caller owns it
        assert arr[0] == i + 1


def test_cached_function_inside_workers(workdir):
    memory = joblib.Memory(workdir / "cache", verbose=0)

    @memory.cache
    def square(x):
        return x * x

    first = joblib.Parallel(n_jobs=2)(joblib.delayed(square)(i) for i in range(10))
    assert first == [i * i for i in range(10)]
    for i in range(10):
        assert square.check_call_in_cache(i)


def test_fsspec_store_through_para_joblib():
    pytest.importorskip("fsspec")
    memory = joblib.Memory("memory://para-e2e/cache", backend="fsspec", verbose=0)
    calls = []

    @memory.cache
    def norms(block):
        calls.append(block.shape)
        return np.linalg.norm(block, axis=1)

    data = np.arange(60.0).reshape(6, 10)
    first = joblib.Parallel(n_jobs=2, prefer="threads")(
        joblib.delayed(norms)(data[i : i + 2]) for i in range(0, 6, 2)
    )
    second = [norms(data[i : i + 2]) for i in range(0, 6, 2)]
    assert len(calls) == 3
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    memory.clear(warn=False)
