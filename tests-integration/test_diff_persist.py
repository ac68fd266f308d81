"""Differential tests: files move both ways between para_joblib and joblib."""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import para_joblib

# Every compressor joblib knows, by name and by the extension it infers.
COMPRESSORS = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4"]
EXTENSIONS = {".z": "zlib", ".gz": "gzip", ".bz2": "bz2", ".lzma": "lzma"}
EXTENSIONS.update({".xz": "xz", ".lz4": "lz4"})

SAMPLES = (
    Path(__file__).resolve().parents[1]
    / "packages"
    / "para-persist"
    / "tests"
    / "data"
    / "joblib-files"
)

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=40),
)
python_objects = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=20,
)
arrays = hnp.arrays(
    dtype=st.one_of(
        hnp.integer_dtypes(endianness="="),
        hnp.floating_dtypes(endianness="="),
        hnp.complex_number_dtypes(endianness="="),
        hnp.boolean_dtypes(),
        st.just(np.dtype(">f8")),
    ),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=40),
)
payloads = st.one_of(
    python_objects,
    arrays,
    st.dictionaries(st.sampled_from(["a", "b", "c"]), arrays, max_size=3),
    st.tuples(arrays, python_objects),
)


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        # joblib.load turns non-native byte order into native ("auto").
        assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("=")
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b and type(a) is type(b)


def _compress_args():
    for method in COMPRESSORS:
        yield method, (method, 3)
    yield "default", 3
    yield "none", 0


COMPRESS = dict(_compress_args())


@pytest.mark.parametrize("compress", sorted(COMPRESS))
@SETTINGS
@given(value=payloads)
def test_para_dump_joblib_load(tmp_path, compress, value):
    path = tmp_path / "para.pkl"
    para_joblib.dump(value, path, compress=COMPRESS[compress])
    assert_same(value, joblib.load(path))
    assert_same(value, para_joblib.load(path))


@pytest.mark.parametrize("compress", sorted(COMPRESS))
@SETTINGS
@given(value=payloads)
def test_joblib_dump_para_load(tmp_path, compress, value):
    path = tmp_path / "joblib.pkl"
    joblib.dump(value, path, compress=COMPRESS[compress])
    assert_same(value, para_joblib.load(path))


@pytest.mark.parametrize("ext", sorted(EXTENSIONS))
def test_compressor_inferred_from_extension_both_ways(tmp_path, ext):
    value = {"x": np.arange(1000.0), "y": [1, "two", 3.0]}
    ours, theirs = tmp_path / f"para{ext}", tmp_path / f"joblib{ext}"
    para_joblib.dump(value, ours)
    joblib.dump(value, theirs)
    assert_same(value, joblib.load(ours))
    assert_same(value, para_joblib.load(theirs))
    # Same container: the compressed stream starts with the same magic bytes.
    assert ours.read_bytes()[:2] == theirs.read_bytes()[:2]


@pytest.mark.parametrize("mmap_mode", ["r", "r+", "c"])
def test_joblib_file_memory_mapped_by_para(tmp_path, mmap_mode):
    value = [np.arange(10_000.0), np.ones((30, 30), order="F"), "meta"]
    path = tmp_path / "big.pkl"
    joblib.dump(value, path)
    loaded = para_joblib.load(path, mmap_mode=mmap_mode)
    assert isinstance(loaded[0], np.memmap)
    assert_same(value, [np.asarray(loaded[0]), np.asarray(loaded[1]), loaded[2]])
    del loaded


@pytest.mark.parametrize("size", [1, 5, 1000, 100_000])
def test_mmap_mode_maps_the_same_arrays_as_joblib(tmp_path, size):
    value = {"a": np.linspace(0, 1, size), "b": [np.arange(size)], "c": 1}

    def kinds(module, name):
        module.dump(value, tmp_path / name)
        loaded = module.load(tmp_path / name, mmap_mode="r")
        return [type(loaded["a"]).__name__, type(loaded["b"][0]).__name__]

    assert kinds(para_joblib, "p.pkl") == kinds(joblib, "j.pkl")


def test_file_object_targets_agree(tmp_path):
    value = {"a": np.arange(50), "b": "text"}
    with open(tmp_path / "para.pkl", "wb") as f:
        para_joblib.dump(value, f)
    with open(tmp_path / "para.pkl", "rb") as f:
        assert_same(value, joblib.load(f))
    with open(tmp_path / "joblib.pkl", "wb") as f:
        joblib.dump(value, f)
    with open(tmp_path / "joblib.pkl", "rb") as f:
        assert_same(value, para_joblib.load(f))


@pytest.mark.parametrize(
    "compress",
    [-1, 10, "no-such-method", ("zlib", 42), ("zlib", 3, 1)],
)
def test_bad_compress_values_raise_like_joblib(tmp_path, compress):
    def attempt(module, name):
        try:
            module.dump([1, 2], tmp_path / name, compress=compress)
        except Exception as exc:
            return type(exc)
        return None

    theirs = attempt(joblib, "j.pkl")
    assert theirs is not None
    assert attempt(para_joblib, "p.pkl") is theirs


def _samples():
    if not SAMPLES.is_dir():
        return []
    return sorted(p.name for p in SAMPLES.iterdir() if p.name != "README.md")


@pytest.mark.parametrize("name", _samples())
def test_old_joblib_files_load_as_joblib_loads_them(name):
    path = SAMPLES / name
    try:
        expected = joblib.load(path)
    except Exception as exc:  # e.g. a compressor missing here
        pytest.fail(f"joblib itself cannot read {name}: {exc!r}")
    assert_same(_plain(expected), _plain(para_joblib.load(path)))


def _plain(value):
    # np.matrix and object arrays compare element-wise as nested lists.
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape, np.asarray(value).tolist())
    return value


def test_no_temporary_file_left_next_to_the_target(tmp_path):
    para_joblib.dump(list(range(100)), tmp_path / "x.pkl", compress=("zstd", 3))
    assert sorted(os.listdir(tmp_path)) == ["x.pkl"]


def _special_arrays(tmp_path):
    base = np.arange(24.0).reshape(4, 6)
    mapped = np.memmap(tmp_path / "m.dat", dtype="<i4", shape=(5,), mode="w+")
    mapped[:] = np.arange(5)
    return {
        "object": np.array([1, "a", None, {"k": (1, 2)}], dtype=object),
        "structured": np.array(
            [(1, 2.5, b"x")], dtype=[("a", "<i4"), ("b", "<f8"), ("c", "S3")]
        ),
        "unicode": np.array(["été", "x"]),
        "datetime": np.array(["2024-01-01", "2026-11-23"], dtype="datetime64[D]"),
        "fortran": np.asfortranarray(base),
        "strided view": base[::2, ::3],
        "zero-d": np.array(3.5),
        "empty": np.zeros((0, 3)),
        "big-endian": np.arange(6, dtype=">i8"),
        "matrix": np.matrix([[1, 2], [3, 4]]),
        "memmap": mapped,
    }


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("compress", ["none", "zlib", "lz4", "xz"])
def test_special_arrays_both_ways(tmp_path, compress):
    values = _special_arrays(tmp_path)
    ours, theirs = tmp_path / "para.pkl", tmp_path / "joblib.pkl"
    para_joblib.dump(values, ours, compress=COMPRESS[compress])
    joblib.dump(values, theirs, compress=COMPRESS[compress])
    for loaded in (joblib.load(ours), para_joblib.load(theirs), para_joblib.load(ours)):
        assert loaded.keys() == values.keys()
        for key, expected in values.items():
            got = loaded[key]
            assert type(got) is type(np.asarray(expected)) or type(got) is type(
                expected
            ), key
            assert got.shape == expected.shape, key
            assert got.dtype.newbyteorder("=") == expected.dtype.newbyteorder("="), key
            assert np.asarray(got).tolist() == np.asarray(expected).tolist(), key
