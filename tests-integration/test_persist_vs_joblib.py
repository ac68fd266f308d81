"""Differential tests: para_persist and the pip-installed joblib, both ways."""

from __future__ import annotations

import gc
import importlib.util
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

import para_persist

pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

JOBLIB_METHODS = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"]


def _value():
    rng = np.random.default_rng(0)
    big = rng.random(100_000)
    return {
        "big": big,
        "again": big,
        "fortran": np.asfortranarray(rng.random((300, 200))),
        "view": rng.random((500, 400))[::2, ::3],
        "small": np.arange(7, dtype=np.int8),
        "object": np.array([1, "a", None], dtype=object),
        "big_endian": np.arange(20_000, dtype=">f8"),
        "datetime": np.arange(20_000).astype("M8[s]"),
        "structured": np.zeros(10_000, dtype=[("a", "<i4"), ("b", "<f8")]),
        "scalar": np.float64(1.5),
        "py": {"list": list(range(1000)), "text": "été", "bytes": b"\x00\xff"},
    }


def _equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert a[k].shape == b[k].shape and np.array_equal(a[k], b[k]), k
            assert a[k].dtype.newbyteorder("=") == b[k].dtype.newbyteorder("="), k
        else:
            assert a[k] == b[k], k


@pytest.mark.parametrize("method", [None, *JOBLIB_METHODS])
def test_para_writes_joblib_reads(tmp_path, method):
    if method == "lz4":
        pytest.importorskip("lz4")
    value = _value()
    path = tmp_path / "p.pkl"
    para_persist.dump(value, path, compress=(method, 3) if method else 0)
    _equal(joblib.load(path), value)
    if method is None:
        mm = joblib.load(path, mmap_mode="r")
        assert isinstance(mm["big"], np.memmap)
        assert np.array_equal(mm["big"], value["big"])
        del mm
        gc.collect()


@pytest.mark.parametrize("method", [None, *JOBLIB_METHODS])
def test_joblib_writes_para_reads(tmp_path, method):
    if method == "lz4":
        pytest.importorskip("lz4")
    value = _value()
    path = tmp_path / "j.pkl"
    joblib.dump(value, path, compress=(method, 3) if method else 0)
    _equal(para_persist.load(path), value)
    _equal(para_persist.load(path, trusted=False), value)
    if method is None:
        mm = para_persist.load(path, mmap_mode="r")
        assert isinstance(mm["big"], np.memmap)
        assert mm["big"].ctypes.data % 16 == 0
        del mm
        gc.collect()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _equal(para_persist.load(path, mmap_mode="r"), value)


def test_same_file_bytes_for_arrays(tmp_path):
    # The raw array block sits where joblib puts it, with joblib's padding.
    arr = np.arange(50_000, dtype=np.float64)
    para_persist.dump(arr, tmp_path / "p.pkl")
    joblib.dump(arr, tmp_path / "j.pkl")
    p = (tmp_path / "p.pkl").read_bytes()
    j = (tmp_path / "j.pkl").read_bytes()
    raw = arr.tobytes()
    assert p.index(raw) % 16 == 0 and j.index(raw) % 16 == 0


# Files joblib's own test-suite ships (0.8.4 to 0.12, Python 3), used in place
# from the installed wheel: para gives joblib's warnings, texts included.
_DATA = Path(importlib.util.find_spec("joblib").origin).parent / "test" / "data"
_SAMPLES = sorted(
    p
    for p in _DATA.glob("joblib_*")
    if "py27" not in p.name and ".npy" not in p.name  # sibling array files
)


def _load_recording(lib, path, mmap_mode):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # numpy >= 2.4 about the dtype state of old pickles, not joblib's.
        warnings.filterwarnings("ignore", message=".+align should be passed")
        obj = lib.load(path, mmap_mode=mmap_mode)
    return obj, [(w.category, str(w.message)) for w in caught]


def test_joblib_sample_files_are_there():
    names = [p.name for p in _SAMPLES]
    assert any("_0.9" in n for n in names) and any("_0.10" in n for n in names)


@pytest.mark.parametrize("mmap_mode", [None, "r"])
@pytest.mark.parametrize("path", _SAMPLES, ids=lambda p: p.name)
def test_joblib_sample_files_warn_as_joblib(path, mmap_mode):
    if path.suffix == ".lz4":
        pytest.importorskip("lz4")
    got, got_warnings = _load_recording(para_persist, path, mmap_mode)
    ref, ref_warnings = _load_recording(joblib, path, mmap_mode)
    assert got_warnings == ref_warnings
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        if isinstance(b, np.ndarray):
            assert type(a) in (type(b), np.matrix)  # para keeps np.matrix
            assert a.dtype == b.dtype
            if b.dtype.hasobject:
                assert list(a.ravel()) == list(b.ravel())
            else:
                assert np.array_equal(a, b)
        else:
            assert a == b
    del got, ref
    gc.collect()
