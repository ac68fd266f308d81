"""Byte order of loaded arrays: joblib 1.6's rule, field by field.

joblib's ``load`` turns an array read from one of its array blocks to this
host's byte order only when the whole dtype is in the other order: a plain
dtype, or a structured one whose top-level fields all are plain types in the
other order. Anything else (a native or order-less field, a nested
structure, a sub-array field) comes back as stored, and so does every array
that numpy pickled itself (items of object arrays, pickles without array
blocks). Memory maps are never converted.
"""

from __future__ import annotations

import gc
import io
import pickle
import sys

import pytest

np = pytest.importorskip("numpy")

from para_persist import dump, load  # noqa: E402
from para_persist._pickler import HEAD  # noqa: E402

# Spelled for this host, so that the test means the same on any machine.
OTHER = ">" if sys.byteorder == "little" else "<"
NATIVE = "<" if OTHER == ">" else ">"

# (dtype, whether joblib makes it native on load)
DTYPES = {
    "plain": (np.dtype(OTHER + "i4"), True),
    "complex": (np.dtype(OTHER + "c16"), True),
    "datetime": (np.dtype(OTHER + "M8[s]"), True),
    "native": (np.dtype(NATIVE + "f8"), False),
    "all_fields_other": (
        np.dtype([("i", OTHER + "i4"), ("f", OTHER + "f8")]),
        True,
    ),
    "field_without_order": (
        np.dtype([("i", OTHER + "i4"), ("s", "S2")]),
        False,
    ),
    "mixed_fields": (np.dtype([("i", OTHER + "i4"), ("f", NATIVE + "f8")]), False),
    "nested_all_other": (
        np.dtype([("i", OTHER + "i4"), ("inner", [("f", OTHER + "f8")])]),
        False,
    ),
    "nested_mixed": (
        np.dtype([("i", NATIVE + "i4"), ("inner", [("f", OTHER + "f8"), ("s", "S2")])]),
        False,
    ),
    "subarray_field": (
        np.dtype([("i", OTHER + "i4"), ("a", OTHER + "f8", (2,))]),
        False,
    ),
}


def orders(dtype):
    """Byte order of every field, nested (numpy spells native '=')."""
    if dtype.names is not None:
        return {n: orders(dtype.fields[n][0]) for n in dtype.names}
    if dtype.subdtype is not None:
        return [orders(dtype.subdtype[0])]
    return "=" if dtype.isnative else dtype.byteorder


def sample(dtype, n):
    rng = np.random.default_rng(7)
    return np.frombuffer(rng.bytes(n * dtype.itemsize), dtype=dtype).copy()


def expected_dtype(name, native):
    dtype, goes = DTYPES[name]
    return dtype.newbyteorder("=") if native and goes else dtype


def check(got, arr, want_dtype):
    assert got.dtype == want_dtype
    assert orders(got.dtype) == orders(want_dtype)
    # Same values: compared in the stored byte order, byte for byte.
    assert np.asarray(got).astype(arr.dtype).tobytes() == arr.tobytes()


def joblib_layout(para_file, out):
    """The file without para's head: read as joblib's own files are (stream)."""
    data = para_file.read_bytes()
    assert data.startswith(HEAD)
    out.write_bytes(data[len(HEAD) :])
    return out


# How the array reaches load: each takes one of the reader's code paths.
def _small(folder, arr):
    dump(arr[:5], folder / "a.pkl")
    return folder / "a.pkl", arr[:5]


def _small_beside_big(folder, arr):
    value = {"small": arr[:5], "big": np.zeros(20_000)}
    dump(value, folder / "a.pkl")
    return folder / "a.pkl", arr[:5], "small"


def _big(folder, arr):
    dump(arr, folder / "a.pkl")
    return folder / "a.pkl", arr


def _compressed(folder, arr):
    dump(arr, folder / "a.pkl", compress=3)
    return folder / "a.pkl", arr


def _joblib_stream(folder, arr):
    dump(arr, folder / "p.pkl")
    return joblib_layout(folder / "p.pkl", folder / "a.pkl"), arr


SOURCES = {
    "small": _small,
    "small_beside_big": _small_beside_big,
    "big": _big,
    "compressed": _compressed,
    "joblib_stream": _joblib_stream,
}
BIG_ITEMS = 20_000  # over the 64 KiB raw-block threshold for every dtype above


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", DTYPES)
@pytest.mark.parametrize("trusted", [True, False])
def test_load_follows_joblib_rule(folder, source, name, trusted):
    dtype, _ = DTYPES[name]
    arr = sample(dtype, BIG_ITEMS)
    path, want, *key = SOURCES[source](folder, arr)
    for native in ("auto", True, False):
        got = load(path, ensure_native_byte_order=native, trusted=trusted)
        got = got[key[0]] if key else got
        assert type(got) is np.ndarray
        check(got, want, expected_dtype(name, native is not False))


@pytest.mark.parametrize("name", DTYPES)
def test_load_from_file_object_follows_joblib_rule(folder, name):
    dtype, _ = DTYPES[name]
    arr = sample(dtype, 50)
    buf = io.BytesIO()
    dump(arr, buf)
    buf.seek(0)
    check(load(buf), arr, expected_dtype(name, True))


@pytest.mark.parametrize("source", ["small", "big", "joblib_stream"])
@pytest.mark.parametrize("name", DTYPES)
def test_memory_maps_keep_stored_order(folder, source, name):
    dtype, _ = DTYPES[name]
    path, want, *_ = SOURCES[source](folder, sample(dtype, BIG_ITEMS))
    got = load(path, mmap_mode="r")
    assert type(got) is np.memmap and got.mode == "r"
    check(got, want, dtype)
    del got
    gc.collect()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_pickled_by_numpy_come_back_as_pickle_gives_them(folder, protocol):
    # A pickle without array blocks (joblib's stream of an object array's
    # items, or any plain pickle): joblib converts none of these arrays, so
    # they are what pickle.loads makes of them (numpy rebuilds protocol < 5
    # arrays native itself; protocol 5 ones keep the stored order).
    inner = sample(DTYPES["plain"][0], 6)
    value = {
        "plain": inner,
        "items": np.array([inner, None], dtype=object),
        "record": sample(DTYPES["all_fields_other"][0], 4),
    }
    data = pickle.dumps(value, protocol=protocol)
    ref = pickle.loads(data)
    if protocol == 5:
        assert not ref["plain"].dtype.isnative  # the case that matters
    (folder / "a.pkl").write_bytes(data)
    for trusted in (True, False):
        got = load(folder / "a.pkl", trusted=trusted)
        check(got["plain"], inner, ref["plain"].dtype)
        check(got["items"][0], inner, ref["items"][0].dtype)
        check(got["record"], value["record"], ref["record"].dtype)


def test_arrays_in_object_arrays_of_para_files_follow_the_rule(folder):
    # para stores them as array blocks: joblib's loader converts those.
    inner = sample(DTYPES["plain"][0], 6)
    dump(np.array([inner, None], dtype=object), folder / "a.pkl")
    got = load(folder / "a.pkl")[0]
    check(got, inner, inner.dtype.newbyteorder("="))


@pytest.mark.parametrize(
    "arr",
    [
        np.empty((0, 3)),
        np.asfortranarray(np.empty((3, 0), dtype="i2")),
        np.empty(0, dtype=OTHER + "f8"),
        np.empty((2, 0, 4), dtype=DTYPES["nested_mixed"][0]),
    ],
    ids=["c", "fortran", "other_order", "structured"],
)
@pytest.mark.parametrize("layout", ["para", "joblib_stream"])
@pytest.mark.parametrize("mode", ["r", "c", "r+"])
def test_empty_arrays_are_memory_mapped(folder, arr, layout, mode):
    # joblib maps an empty array as it maps any other: an empty np.memmap.
    dump({"e": arr, "n": np.arange(3.0)}, folder / "p.pkl")
    path = folder / "p.pkl"
    if layout == "joblib_stream":
        path = joblib_layout(path, folder / "j.pkl")
    got = load(path, mmap_mode=mode)["e"]
    assert type(got) is np.memmap
    assert got.mode == mode
    assert got.shape == arr.shape and got.dtype == arr.dtype
    assert got.flags.c_contiguous == arr.flags.c_contiguous
    assert got.flags.f_contiguous == arr.flags.f_contiguous
    assert got.flags.writeable == (mode != "r")
    del got
    gc.collect()


def test_empty_array_is_not_mapped_when_compressed(folder):
    dump(np.empty((0, 3)), folder / "a.pkl", compress=1)
    with pytest.warns(UserWarning, match="not compatible with compressed"):
        got = load(folder / "a.pkl", mmap_mode="r")
    assert type(got) is np.ndarray and got.shape == (0, 3)
