"""Masked arrays written by joblib 1.6 load in para as joblib loads them."""

from __future__ import annotations

import joblib
import numpy as np
import pytest

import para_persist

CASES = {
    "mask": np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
    "no mask": np.ma.array([1, 2, 3]),
    "fill value": np.ma.array([1.0, 2.0], mask=[1, 0], fill_value=-9.0),
    "objects": np.ma.array(np.array([1, "a", None], dtype=object), mask=[0, 1, 0]),
    "structured": np.ma.array(
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]), mask=[(True, False)]
    ),
    "big": np.ma.masked_less(np.arange(100_000.0), 50.0),
}


def _same(a, b, fill=True):
    assert type(b) is type(a)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(np.ma.getmaskarray(b), np.ma.getmaskarray(a))
    np.testing.assert_array_equal(b.filled(a.fill_value), a.filled(a.fill_value))
    if fill:  # joblib gives an object array's fill value back as str
        assert repr(b.fill_value) == repr(a.fill_value)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("compress", [0, 3, "lz4"])
@pytest.mark.parametrize("writer", ["joblib", "para"])
def test_masked_array_files_load_as_joblib_loads_them(tmp_path, name, compress, writer):
    path = tmp_path / "ma.pkl"
    dump = joblib.dump if writer == "joblib" else para_persist.dump
    dump({"x": CASES[name], "n": 1}, path, compress=compress)
    expected = joblib.load(path)["x"]
    _same(CASES[name], expected, fill=False)
    for trusted in (True, False):
        _same(expected, para_persist.load(path, trusted=trusted)["x"])
