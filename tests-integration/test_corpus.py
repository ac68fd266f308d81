"""Every kind of array users save, in files going both ways between para and
joblib, for every compressor both know, plain and memory-mapped.

For each object and compressor: joblib writes, para reads; para writes,
joblib reads. What comes back must be what joblib itself returns from its
own file (same call, same options): values, dtypes, subclasses, masks and
fill values, memory order and writeability, memmap or not. A hypothesis
test adds arrays of drawn dtypes, shapes, orders and views.
"""

from __future__ import annotations

import importlib.util
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import para_joblib

# Compressors of both libraries (zstd is para's only); lz4 when installed.
COMPRESSORS = [0, "zlib", "gzip", "bz2", "lzma", "xz"]
if importlib.util.find_spec("lz4") is not None:
    COMPRESSORS.append("lz4")

# Above para-persist's small-array threshold (64 KiB): raw blocks, mappable.
BIG = 20_000


def _memmap(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus-src") / "src.mmap"
    m = np.memmap(path, dtype="f4", mode="w+", shape=(300, 100))
    m[:] = np.arange(30_000, dtype="f4").reshape(300, 100)
    m.flush()
    return m


def _fitted_model():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.RandomState(0)
    X = rng.rand(60, 4)
    y = (X[:, 0] > 0.5).astype(int)
    return RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)


CASES = {
    "masked_no_mask": lambda: np.ma.masked_array(np.arange(10.0)),
    "masked_with_mask": lambda: np.ma.masked_array(
        np.arange(10), mask=[i % 3 == 0 for i in range(10)], fill_value=-7
    ),
    "masked_big_float": lambda: np.ma.masked_invalid(
        np.where(np.arange(BIG) % 5 == 0, np.nan, np.arange(BIG, dtype="f8"))
    ),
    "record_array": lambda: np.rec.fromarrays(
        [np.arange(5), np.linspace(0, 1, 5)], names="a,b"
    ),
    "matrix": lambda: np.matrix([[1, 2], [3, 4]]),
    "structured_nested": lambda: np.array(
        [(1, (2.0, b"x")), (3, (4.0, b"y"))],
        dtype=[("i", "<i4"), ("inner", [("f", ">f8"), ("s", "S2")])],
    ),
    # joblib turns a structured array native only when every top-level field
    # is a plain type in the other byte order; these cases sit either side.
    "structured_foreign": lambda: np.array(
        [(1, 2.0), (3, 4.0)], dtype=[("i", ">i4"), ("f", ">f8")]
    ),
    "structured_foreign_bytes": lambda: np.array(
        [(1, b"ab"), (2, b"c")], dtype=[("i", ">i4"), ("s", "S2")]
    ),
    "structured_mixed_order": lambda: np.array(
        [(1, 2.0), (3, 4.0)], dtype=[("i", ">i4"), ("f", "<f8")]
    ),
    "structured_nested_foreign": lambda: np.array(
        [(1, (2.0,)), (3, (4.0,))],
        dtype=[("i", ">i4"), ("inner", [("f", ">f8")])],
    ),
    "structured_subarray_foreign": lambda: np.array(
        [(1, [2.0, 3.0])], dtype=[("i", ">i4"), ("a", ">f8", (2,))]
    ),
    "structured_object_field": lambda: np.array(
        [(1, {"k": 1}), (2, None)], dtype=[("i", "i8"), ("o", "O")]
    ),
    "object_strings": lambda: np.array(["a", "bé", ""], dtype=object),
    "object_mixed": lambda: np.array(
        [{"d": 1}, np.arange(3), None, "s", 1.5], dtype=object
    ),
    "datetime64": lambda: np.arange("2020-01-01", "2020-03-01", dtype="datetime64[D]"),
    "datetime64_ns_big": lambda: np.arange(BIG, dtype="i8").astype("datetime64[ns]"),
    "timedelta64": lambda: np.array([1, -2, 3], dtype="timedelta64[s]"),
    "complex128": lambda: np.arange(8) * (1 + 2j),
    "complex64_big": lambda: (np.arange(BIG) * (1 - 1j)).astype("c8"),
    "float16": lambda: np.linspace(-1, 1, 17, dtype="f2"),
    "bool": lambda: np.arange(20) % 3 == 0,
    "unicode": lambda: np.array(["", "été", "中国"]),
    "bytes": lambda: np.array([b"", b"ab", b"\x00\xff"]),
    "big_endian": lambda: np.arange(12, dtype=">i4").reshape(3, 4),
    "big_endian_big": lambda: np.arange(BIG, dtype=">f8"),
    "fortran": lambda: np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "fortran_big": lambda: np.asfortranarray(
        np.arange(BIG, dtype="f8").reshape(200, 100)
    ),
    "noncontiguous_view": lambda: np.arange(60.0).reshape(6, 10)[::2, 1::3],
    "noncontiguous_big": lambda: np.arange(2 * BIG, dtype="f8")[::2],
    "zero_d": lambda: np.array(3.5),
    "zero_d_object": lambda: np.array({"a": 1}, dtype=object),
    "empty": lambda: np.empty((0, 3)),
    "empty_fortran": lambda: np.asfortranarray(np.empty((3, 0), dtype="i2")),
    "empty_foreign": lambda: np.empty((0, 2), dtype=">f8"),
    "big_int": lambda: np.arange(BIG, dtype="i8").reshape(200, 100),
    "scalars": lambda: [np.float32(1.5), np.int64(-3), np.datetime64("2021-01-01")],
    "nested_containers": lambda: {
        "list": [np.arange(3), {"x": np.ones((2, 2))}],
        "tuple": (np.zeros(BIG // 4), "text"),
    },
    "dataframe": lambda: pd.DataFrame(
        {
            "i": np.arange(1000),
            "f": np.linspace(0, 1, 1000),
            "s": [f"row{i}" for i in range(1000)],
            "t": pd.date_range("2020-01-01", periods=1000, freq="h"),
            "c": pd.Categorical(["a", "b"] * 500),
        }
    ),
    "series": lambda: pd.Series(np.arange(BIG, dtype="f8"), name="values"),
    "sklearn_model": _fitted_model,
}

LIBS = {"para": para_joblib, "joblib": joblib}


def _kept_subclass(got, ref, saved) -> bool:
    # The one documented difference (docs/migrating.rst): para gives back the
    # ndarray subclass that was saved (np.matrix, np.recarray); joblib 1.6
    # under numpy 2 returns a plain ndarray (its check uses the removed
    # ``__array_prepare__``).
    return (
        type(ref) in (np.ndarray, np.memmap)
        and saved is not None
        and type(got) is type(saved)
        and type(saved) is not np.ndarray
    )


def assert_same(got, ref, where="obj", saved=None, mapped_items=False):
    """``got`` is what joblib itself returned (``ref``), piece by piece.

    ``mapped_items``: joblib read a para file with ``mmap_mode``; para stores
    the arrays held in an object array raw, so joblib maps them where it
    reads its own file's in memory (documented in docs/migrating.rst).
    """
    if _kept_subclass(got, ref, saved):
        assert got.flags.writeable == ref.flags.writeable, where
        got, ref = np.asarray(got).view(np.ndarray), np.asarray(ref).view(np.ndarray)
    if mapped_items and type(ref) is np.ndarray and type(got) is np.memmap:
        got = np.array(got)
    assert type(got) is type(ref), f"{where}: {type(got)} != {type(ref)}"
    if isinstance(ref, np.ndarray):
        assert got.dtype == ref.dtype, f"{where}: dtype {got.dtype} != {ref.dtype}"
        assert got.shape == ref.shape, where
        for flag in ("WRITEABLE", "C_CONTIGUOUS", "F_CONTIGUOUS"):
            assert got.flags[flag] == ref.flags[flag], f"{where}: flag {flag}"
        if isinstance(ref, np.memmap):
            assert got.mode == ref.mode, where
        if isinstance(ref, np.ma.MaskedArray):
            np.testing.assert_array_equal(
                np.ma.getmaskarray(got), np.ma.getmaskarray(ref)
            )
            assert got.fill_value == ref.fill_value, where
            assert_same(np.asarray(got.data), np.asarray(ref.data), where + ".data")
            return
        if ref.dtype.names and not ref.dtype.hasobject:
            # Structured: compared by bytes (a NaN field never equals itself).
            assert (
                np.ascontiguousarray(got).tobytes()
                == np.ascontiguousarray(ref).tobytes()
            ), where
        elif ref.dtype.hasobject:
            assert len(got.reshape(-1)) == len(ref.reshape(-1))
            for i, (a, b) in enumerate(zip(got.reshape(-1), ref.reshape(-1))):
                assert_same(a, b, f"{where}[{i}]", mapped_items=mapped_items)
        else:
            np.testing.assert_array_equal(
                np.asarray(got), np.asarray(ref), err_msg=where
            )
    elif isinstance(ref, pd.DataFrame):
        pd.testing.assert_frame_equal(got, ref)
    elif isinstance(ref, pd.Series):
        pd.testing.assert_series_equal(got, ref)
    elif isinstance(ref, dict):
        assert got.keys() == ref.keys(), where
        for k in ref:
            assert_same(got[k], ref[k], f"{where}[{k!r}]")
    elif isinstance(ref, (list, tuple)):
        assert len(got) == len(ref), where
        for i, (a, b) in enumerate(zip(got, ref)):
            assert_same(a, b, f"{where}[{i}]")
    elif hasattr(ref, "predict_proba"):
        X = np.random.RandomState(1).rand(20, 4)
        np.testing.assert_array_equal(got.predict_proba(X), ref.predict_proba(X))
        assert got.get_params() == ref.get_params()
    elif isinstance(ref, np.generic):
        assert got.dtype == ref.dtype and got == ref, where
    else:
        assert got == ref, where


def _load(lib, path, mmap_mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LIBS[lib].load(path, mmap_mode=mmap_mode)


def _round(tmp_path, obj, compress, writer, reader, mmap_mode):
    """(what ``reader`` returns from ``writer``'s file, what joblib returns
    from its own file)."""
    theirs = tmp_path / "joblib.pkl"
    joblib.dump(obj, theirs, compress=compress)
    if writer == "joblib":
        path = theirs
    else:
        path = tmp_path / "para.pkl"
        para_joblib.dump(obj, path, compress=compress)
    return _load(reader, path, mmap_mode), _load("joblib", theirs, mmap_mode)


VARIANTS = [(c, None) for c in COMPRESSORS] + [(0, "r")]
DIRECTIONS = [("joblib", "para"), ("para", "joblib")]


def _params():
    for name in CASES:
        for compress, mmap_mode in VARIANTS:
            for writer, reader in DIRECTIONS:
                yield pytest.param(
                    name,
                    compress,
                    mmap_mode,
                    writer,
                    reader,
                    id=(
                        f"{name}-{compress or 'raw'}-{mmap_mode or 'load'}-"
                        f"{writer}-to-{reader}"
                    ),
                )


@pytest.fixture(scope="module")
def memmap_source(tmp_path_factory):
    m = _memmap(tmp_path_factory)
    yield m
    del m


@pytest.mark.parametrize(
    ("name", "compress", "mmap_mode", "writer", "reader"), _params()
)
def test_corpus(tmp_path, name, compress, mmap_mode, writer, reader):
    obj = CASES[name]()
    got, ref = _round(tmp_path, obj, compress, writer, reader, mmap_mode)
    assert_same(got, ref, saved=obj, mapped_items=writer == "para" and mmap_mode)
    del got, ref  # memmaps closed before the folder goes


@pytest.mark.parametrize(("compress", "mmap_mode"), VARIANTS)
@pytest.mark.parametrize(("writer", "reader"), DIRECTIONS)
def test_memmap_input(tmp_path, memmap_source, compress, mmap_mode, writer, reader):
    got, ref = _round(tmp_path, memmap_source, compress, writer, reader, mmap_mode)
    assert_same(got, ref)
    del got, ref


# -- hypothesis: drawn dtypes, shapes, orders and views -----------------------
def _dtypes():
    scalar = (
        hnp.integer_dtypes(endianness="?")
        | hnp.unsigned_integer_dtypes(endianness="?")
        | hnp.floating_dtypes(endianness="?")
        | hnp.complex_number_dtypes(endianness="?")
        | hnp.boolean_dtypes()
        | hnp.datetime64_dtypes(endianness="?")
        | hnp.timedelta64_dtypes(endianness="?")
        | hnp.unicode_string_dtypes(endianness="?", max_len=4)
        | hnp.byte_string_dtypes(max_len=4)
    )
    return scalar | hnp.array_dtypes(scalar, min_size=1, max_size=3)


@st.composite
def _arrays(draw):
    dtype = draw(_dtypes())
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
    arr = draw(hnp.arrays(dtype, shape))
    layout = draw(st.sampled_from(["C", "F", "view"]))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "view" and arr.ndim:
        arr = arr[(slice(None, None, -2),) + (slice(None),) * (arr.ndim - 1)]
    return arr


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    arr=_arrays(),
    compress=st.sampled_from(COMPRESSORS),
    mmap=st.booleans(),
    direction=st.sampled_from(DIRECTIONS),
)
def test_drawn_arrays(tmp_path, arr, compress, mmap, direction):
    mmap_mode = "r" if mmap and not compress else None
    got, ref = _round(tmp_path, arr, compress, *direction, mmap_mode)
    assert_same(got, ref, saved=arr)
    del got, ref


def test_corpus_covers_every_kind():
    kinds = {type(CASES[n]()).__name__ for n in CASES}
    assert {
        "MaskedArray",
        "recarray",
        "matrix",
        "ndarray",
        "DataFrame",
        "Series",
    } <= kinds
    assert "lz4" in COMPRESSORS or importlib.util.find_spec("lz4") is None
    # The "big" cases are above para-persist's small-array threshold (64 KiB).
    assert BIG * 8 > 64 * 1024
