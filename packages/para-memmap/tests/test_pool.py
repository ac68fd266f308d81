"""MemmappingPool: multiprocessing.Pool with the same array transport."""

from __future__ import annotations

import os

import numpy as np
import pytest

from para_memmap import MemmappingPool, has_shareable_memory


def our_files():
    """This process's files in /dev/shm: kept copies and its folders' files."""
    prefix = f"para-memmap-{os.getpid()}-"
    out = []
    for name in os.listdir("/dev/shm"):
        path = os.path.join("/dev/shm", name)
        if name.startswith(prefix):
            out += (
                [path]
                if os.path.isfile(path)
                else [os.path.join(path, n) for n in os.listdir(path)]
            )
    return out


def describe(a):
    return type(a).__name__, has_shareable_memory(a), a.flags.writeable


def total(a):
    return float(a.sum())


def ones(n):
    return np.ones(n)


def fill(args):
    out, i = args
    out[i] = i


class Tagged:
    def __init__(self, value):
        self.value = value


def reduce_tagged(obj):
    return Tagged, (obj.value + 1,)


def unwrap(t):
    return t.value


def test_map_shares_large_arrays_and_returns_large_results():
    data = np.arange(200_000, dtype=np.float64)
    with MemmappingPool(2, max_nbytes=1e5) as pool:
        assert pool.map(describe, [data, data[:10]]) == [
            ("memmap", True, False),
            ("ndarray", False, True),
        ]
        assert pool.map(total, [data] * 3) == [float(data.sum())] * 3
        back = pool.apply_async(ones, (300_000,)).get(timeout=60)
        assert type(back) is np.ndarray and back.sum() == 300_000
        assert not has_shareable_memory(back)
        folder = pool._temp_folder
        assert len(our_files()) == 1  # one copy of `data`, kept for later calls
    assert not os.path.exists(folder)


def first(a):
    return float(a[0])


def test_an_array_changed_between_calls_is_sent_again():
    data = np.zeros(100_000)
    with MemmappingPool(2, max_nbytes=1e5) as pool:
        assert pool.map(first, [data] * 2) == [0.0, 0.0]
        assert pool.apply(first, (data,)) == 0.0
        data[0] = 42.0  # joblib's pool would keep sending the stale copy
        assert pool.map(first, [data] * 2) == [42.0, 42.0]
        assert list(pool.imap(first, [data])) == [42.0]
        # The stale copy stays until the pool ends: earlier calls may read it.
        assert len(our_files()) == 2
    assert len(our_files()) == 1


def test_workers_fill_a_shared_memmap(tmp_path):
    out = np.memmap(tmp_path / "out.dat", dtype="f8", mode="w+", shape=(6,))
    pool = MemmappingPool(2)
    try:
        pool.map(fill, [(out, i) for i in range(6)])
    finally:
        pool.close()
        pool.join()
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert not os.path.exists(pool._temp_folder)
    del out


def test_custom_reducers_and_disabled_memmapping():
    with MemmappingPool(
        2,
        max_nbytes=None,
        forward_reducers={Tagged: reduce_tagged},
        backward_reducers={Tagged: reduce_tagged},
    ) as pool:
        assert pool.map(unwrap, [Tagged(1)]) == [2]
        assert pool.apply(Tagged, (10,)).value == 11
        assert pool.map(describe, [np.zeros(10**6)]) == [("ndarray", False, True)]


def test_invalid_mode_is_refused():
    with pytest.raises(ValueError, match="'rw'"):
        MemmappingPool(2, mmap_mode="rw")


def test_spawned_workers_get_the_result_reducer():
    import multiprocessing

    data = np.ones(200_000)
    ctx = multiprocessing.get_context("spawn")
    with MemmappingPool(1, max_nbytes=1e5, context=ctx) as pool:
        assert pool.map(describe, [data]) == [("memmap", True, False)]
        assert pool.apply(ones, (200_000,)).sum() == 200_000
