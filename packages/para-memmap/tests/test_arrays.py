"""Layouts, by-reference views and the rebuild functions, in one process."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from para_memmap import empty, has_shareable_memory, zeros
from para_memmap._arrays import (
    backing_memmap,
    byte_chunks,
    checksum,
    rebuild_result,
    reduce_by_reference,
)
from para_memmap._storage import write_array


def _roundtrip_by_reference(view):
    func, args = reduce_by_reference(view, backing_memmap(view))
    return pickle.loads(pickle.dumps((func, args)))[0](*args)


def test_has_shareable_memory_tells_mapped_from_ordinary(tmp_path):
    assert not has_shareable_memory(np.zeros(4))
    assert not has_shareable_memory([1, 2])
    m = np.memmap(tmp_path / "m.dat", dtype="f8", mode="w+", shape=(10,))
    assert has_shareable_memory(m)
    assert has_shareable_memory(m[2:5])
    assert has_shareable_memory(np.asarray(m)[::2])
    del m


@pytest.mark.parametrize(
    "make_view",
    [
        lambda m: m[3:17],
        lambda m: m[::3],
        lambda m: m[::-2],
        lambda m: m.reshape(10, 10)[2:8, 1:9:2],
        lambda m: m.reshape(10, 10).T,
        lambda m: m.reshape(10, 10)[::-1, ::-3],
        lambda m: np.asarray(m)[5:],
    ],
    ids=["slice", "step", "negative", "2d-strided", "fortran", "2d-negative", "base"],
)
def test_views_of_a_memmap_travel_by_reference(tmp_path, make_view):
    m = np.memmap(tmp_path / "m.dat", dtype="f8", mode="w+", shape=(100,))
    m[:] = np.arange(100)
    view = make_view(m)
    rebuilt = _roundtrip_by_reference(view)
    np.testing.assert_array_equal(rebuilt, view)
    assert has_shareable_memory(rebuilt)
    # "w+" is reopened as "r+": same file, writes are shared, nothing zeroed.
    rebuilt[...] = -1
    assert (np.asarray(view) == -1).all()
    del m, view, rebuilt


def test_by_reference_honours_memmap_offset_and_mode(tmp_path):
    path = tmp_path / "off.dat"
    np.arange(50, dtype="i4").tofile(path)
    m = np.memmap(path, dtype="i4", mode="r", offset=40, shape=(40,))
    rebuilt = _roundtrip_by_reference(m[5:9])
    assert rebuilt.tolist() == [15, 16, 17, 18]
    assert not rebuilt.flags.writeable
    del m, rebuilt


arrays = st.tuples(
    st.sampled_from(["f8", "i2", "u1", "c16", "<i8", ">f4"]),
    st.lists(st.integers(1, 7), min_size=0, max_size=3),
    st.sampled_from(["C", "F", "strided", "reversed"]),
)


def _make(spec):
    dtype, shape, layout = spec
    n = int(np.prod(shape)) if shape else 1
    a = np.arange(n * 4).astype(dtype)[: n * 4].reshape(-1)
    base = a[:n].reshape(shape) if shape else a[0:1].reshape(())
    if layout == "F":
        return np.asfortranarray(base)
    if layout == "strided" and shape:
        return a[: n * 2 : 2].reshape(shape)
    if layout == "reversed" and shape:
        return base[::-1]
    return base


@settings(max_examples=60, deadline=None)
@given(arrays)
def test_written_file_holds_the_array_in_its_declared_order(tmp_path_factory, spec):
    a = _make(spec)
    path = str(tmp_path_factory.mktemp("w") / "a.dat")
    order, chunks = byte_chunks(a)
    hasher = write_array(path, chunks(), a.nbytes)
    with open(path, "rb") as f:
        assert f.read() == a.tobytes(order=order)
    assert hasher.intdigest() == checksum(a)
    assert order == ("F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C")
    os.unlink(path)


def test_checksum_sees_a_one_element_change():
    a = np.random.default_rng(0).random(100_000)
    before = checksum(a)
    a[54_321] += 1e-12
    assert checksum(a) != before
    assert checksum(a[::2]) == checksum(np.ascontiguousarray(a[::2]))


def test_rebuilt_result_is_an_ordinary_writable_array_and_the_file_is_gone(tmp_path):
    a = np.asfortranarray(np.random.default_rng(1).random((30, 40)))
    path = str(tmp_path / "r.dat")
    order, chunks = byte_chunks(a)
    write_array(path, chunks(), a.nbytes, checksum=False)
    r = rebuild_result(path, a.dtype, a.shape, order)
    assert not os.path.exists(path)
    assert type(r) is np.ndarray
    np.testing.assert_array_equal(r, a)
    assert r.flags.writeable and r.flags.f_contiguous
    assert not has_shareable_memory(r)
    r[0, 0] = 42.0
    assert r[0, 0] == 42.0


def test_empty_and_zeros_live_in_shared_memory_until_collected():
    import gc

    a = empty((100, 3), dtype="f4", order="F")
    assert isinstance(a, np.memmap) and a.shape == (100, 3) and a.flags.f_contiguous
    assert has_shareable_memory(a) and os.path.exists(a.filename)
    filename = a.filename
    z = zeros(10, dtype="i8")
    assert z.tolist() == [0] * 10
    view = a[::2]
    del a
    gc.collect()
    assert os.path.exists(filename)  # a view still holds the memory
    del view
    gc.collect()
    assert not os.path.exists(filename)
    del z


def test_empty_validates_its_arguments():
    with pytest.raises(ValueError, match="object"):
        empty(3, dtype=object)
    with pytest.raises(ValueError, match="'K'"):
        empty(3, order="K")
    with pytest.raises(ValueError, match="negative"):
        empty((2, -1))
    assert empty(0).shape == (0,)


def test_empty_falls_back_with_a_warning_when_shm_is_short(monkeypatch):
    import para_memmap._shared as shared

    monkeypatch.delenv("JOBLIB_TEMP_FOLDER", raising=False)
    monkeypatch.setattr(shared, "free_bytes", lambda path: 1024)
    with pytest.warns(UserWarning, match="bytes free"):
        a = empty(1000)
    if os.path.isdir("/dev/shm"):
        assert not a.filename.startswith("/dev/shm")
    a[:] = 1
    assert a.sum() == 1000
    del a


def test_empty_honours_temp_folder(tmp_path):
    a = empty(10, temp_folder=str(tmp_path))
    assert os.path.dirname(a.filename) == str(tmp_path)
    del a
