"""Through para_core.Parallel: joblib's documented memmap behaviours and more."""

from __future__ import annotations

import os

import numpy as np
import pytest

import para_memmap
from para_core import Parallel, delayed
from para_memmap import has_shareable_memory


@pytest.fixture(autouse=True)
def transport():
    para_memmap.enable()
    yield
    para_memmap.disable()


def describe(a):
    return type(a).__name__, has_shareable_memory(a), a.flags.writeable


def slice_sum(a, i, n):
    k = len(a) // n
    return float(a[i * k : (i + 1) * k].sum())


def filename_of(a):
    return a.filename


def ones(n):
    return np.ones(n)


def fill_row(data, out, i):
    out[i] = data[i].sum()


def fail(a):
    raise ValueError("boom")


def test_enable_disable_are_idempotent():
    para_memmap.enable()
    assert para_memmap.is_enabled()
    para_memmap.disable()
    para_memmap.disable()
    assert not para_memmap.is_enabled()


def test_automatic_conversion_of_large_arguments():
    # joblib's parallel_numpy guide: arrays above max_nbytes reach the
    # workers as read-only memory maps; small ones are plain copies.
    data = np.arange(1_000_000, dtype=np.float64)
    out = Parallel(n_jobs=2)(delayed(slice_sum)(data, i, 4) for i in range(4))
    assert out == [float(data[i * 250_000 : (i + 1) * 250_000].sum()) for i in range(4)]
    seen = Parallel(n_jobs=2)(delayed(describe)(x) for x in (data, data[:10]))
    assert seen == [("memmap", True, False), ("ndarray", False, True)]
    seen = Parallel(n_jobs=2, max_nbytes=None)(delayed(describe)(x) for x in [data])
    assert seen == [("ndarray", False, True)]


@pytest.mark.parametrize("mmap_mode", ["r+", "c"])
def test_mmap_mode_is_honoured(mmap_mode):
    data = np.zeros(200_000)
    seen = Parallel(n_jobs=2, mmap_mode=mmap_mode)(delayed(describe)(data) for _ in "a")
    assert seen == [("memmap", True, True)]


def test_manual_memmap_passing(tmp_path):
    # joblib's guide dumps an array and reloads it with mmap_mode; np.save +
    # np.load give the same kind of np.memmap (with a header offset).
    path = tmp_path / "data.npy"
    np.save(path, np.arange(100_000, dtype=np.float64))
    data = np.load(path, mmap_mode="r")
    assert isinstance(data, np.memmap)
    names = Parallel(n_jobs=2)(delayed(filename_of)(data[i * 10 :]) for i in range(3))
    assert names == [str(path)] * 3
    strided = Parallel(n_jobs=2)(delayed(describe)(data[::3]) for _ in "a")
    assert strided == [("ndarray", True, False)]
    out = Parallel(n_jobs=2)(delayed(slice_sum)(data, i, 4) for i in range(4))
    assert sum(out) == float(np.arange(100_000).sum())
    del data


def test_workers_write_results_into_a_shared_w_plus_memmap(tmp_path):
    # joblib's guide: "Writing parallel computation results in shared memory".
    data = np.random.default_rng(0).random((8, 50_000))
    out = np.memmap(tmp_path / "out.mmap", dtype=data.dtype, shape=(8,), mode="w+")
    Parallel(n_jobs=2)(delayed(fill_row)(data, out, i) for i in range(8))
    np.testing.assert_allclose(out, data.sum(axis=1))
    del out


def test_shared_empty_array_is_filled_in_place_by_workers():
    data = np.random.default_rng(1).random((6, 1000))
    out = para_memmap.empty(6)
    Parallel(n_jobs=2)(delayed(fill_row)(data, out, i) for i in range(6))
    np.testing.assert_allclose(out, data.sum(axis=1))
    del out


def test_large_results_come_back_as_ordinary_owned_arrays():
    results = Parallel(n_jobs=2)(delayed(ones)(500_000) for _ in range(3))
    for r in results:
        assert type(r) is np.ndarray and r.flags.writeable
        assert not has_shareable_memory(r) and r.sum() == 500_000
        r[0] = 3.0


def test_with_block_reuses_unchanged_arrays_and_sees_changes():
    data = np.ones(300_000)
    with Parallel(n_jobs=2) as parallel:
        first = parallel(delayed(filename_of)(data) for _ in range(2))
        second = parallel(delayed(filename_of)(data) for _ in range(2))
        assert len(set(first)) == 1 and first == second  # not copied again
        data[-1] = 5.0
        assert parallel(delayed(slice_sum)(data, 0, 1) for _ in "a") == [300_004.0]
        # Patched in place (write-protection) or copied anew: one file left.
        third = parallel(delayed(filename_of)(data) for _ in range(2))
        assert third[0] == first[0] or not os.path.exists(first[0])


def test_threading_backend_is_left_alone():
    data = np.ones(300_000)
    seen = Parallel(n_jobs=2, backend="threading")(
        delayed(describe)(data) for _ in "ab"
    )
    assert seen == [("ndarray", False, True)] * 2


def test_multiprocessing_backend():
    data = np.arange(400_000, dtype=np.float64)
    out = Parallel(n_jobs=2, backend="multiprocessing")(
        delayed(slice_sum)(data, i, 2) for i in range(2)
    )
    assert sum(out) == float(data.sum())
    big = Parallel(n_jobs=2, backend="multiprocessing")(
        delayed(ones)(200_000) for _ in "a"
    )
    assert big[0].sum() == 200_000


def test_task_error_still_cleans_up():
    data = np.ones(300_000)
    with pytest.raises(ValueError, match="boom"):
        Parallel(n_jobs=2)(delayed(fail)(data) for _ in range(4))


def test_small_shm_falls_back_with_a_warning_and_succeeds(monkeypatch):
    import tempfile

    from para_memmap import _storage

    monkeypatch.delenv("JOBLIB_TEMP_FOLDER", raising=False)
    if _storage.resolve_root(None) != ("/dev/shm", True):
        pytest.skip("no writable /dev/shm on this machine")
    # A Docker-like 64 MB /dev/shm, nearly full.
    monkeypatch.setattr(_storage, "free_bytes", lambda path: 1 << 20)
    data = np.arange(2_000_000, dtype=np.float64)  # 16 MB
    with pytest.warns(UserWarning, match="falls back"):
        names = Parallel(n_jobs=2)(delayed(filename_of)(data) for _ in range(2))
    assert names[0].startswith(os.path.abspath(tempfile.gettempdir()))
    data = data + 1  # new data, written again: warned again
    with pytest.warns(UserWarning, match="falls back"):
        out = Parallel(n_jobs=2)(delayed(slice_sum)(data, i, 2) for i in range(2))
    assert sum(out) == float(data.sum())
