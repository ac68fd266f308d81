"""numpy arrays: layouts, dtypes, memory maps, byte order, peak memory."""

from __future__ import annotations

import gc
import io
import pickle
import sys
import tracemalloc

import pytest

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

import para_persist  # noqa: E402
from para_persist import dump, load  # noqa: E402

BIG = 70_000  # float64 items: over the 64 KiB raw-block threshold
METHODS = [0, "zlib", "gzip", "bz2", "lzma", "xz", "lz4", "zstd"]


def _arrays():
    rng = np.random.default_rng(0)
    big = rng.random(BIG)
    return {
        "big": big,
        "same_again": big,
        "small": np.arange(10, dtype=np.int16),
        "zero_d": np.array(3.5),
        "empty": np.empty((0, 3)),
        "fortran": np.asfortranarray(rng.random((300, 40))),
        "view": rng.random((400, 300))[::3, ::2],
        "small_view": np.arange(100)[::7],
        # 1-d and strided: reshape(-1) returns it as is (no copy).
        "big_1d_view": rng.random(2 * BIG)[::2],
        "matrix": np.matrix(np.arange(12).reshape(3, 4)),
        "big_matrix": np.matrix(rng.random((300, 300))),
        "object": np.array([1, "two", {"three": 3}, None], dtype=object),
        "structured": np.zeros(20000, dtype=[("a", "<i4"), ("b", ">f8"), ("c", "S3")]),
        "big_endian": np.arange(BIG, dtype=">i8"),
        "complex": (rng.random(BIG) + 1j).astype(np.complex64),
        "datetime": np.arange(BIG).astype("M8[s]"),
        "bool": rng.random(BIG) > 0.5,
        "strings": np.array(["abc", "défg"] * 20000),
        "scalar": np.float32(2.5),
        "dtype": np.dtype([("x", "<f4")]),
    }


def _check(loaded, original, native=True):
    assert loaded.keys() == original.keys()
    for key, want in original.items():
        got = loaded[key]
        if isinstance(want, np.ndarray):
            assert type(got) in (type(want), np.memmap), key
            assert got.shape == want.shape, key
            assert np.array_equal(np.asarray(got), np.asarray(want)), key
            if native and want.dtype.fields is None and want.dtype.kind != "O":
                assert got.dtype.isnative, key
        else:
            assert got == want, key
    assert loaded["big"] is loaded["same_again"]
    assert loaded["fortran"].flags.f_contiguous


@pytest.mark.parametrize("method", METHODS)
def test_array_roundtrip(folder, method):
    if method == "lz4":
        pytest.importorskip("lz4.frame")
    if method == "zstd":
        pytest.importorskip("zstandard")
    value = _arrays()
    dump(value, folder / "a.pkl", compress=(method, 3) if method else 0)
    _check(load(folder / "a.pkl"), value)
    _check(load(folder / "a.pkl", trusted=False), value)
    if method:
        with pytest.warns(UserWarning, match="not compatible with compressed"):
            _check(load(folder / "a.pkl", mmap_mode="r"), value, native=False)


def test_raw_blocks_are_aligned_and_joblib_shaped(folder):
    arr = np.arange(BIG, dtype=np.float64)
    dump(arr, folder / "a.pkl")
    data = (folder / "a.pkl").read_bytes()
    raw = arr.tobytes()
    start = data.index(raw)
    assert start % 16 == 0
    # One padding-length byte, then that many 0xff bytes, as joblib writes.
    k = 0
    while data[start - 1 - k] == 0xFF and k < 16:
        k += 1
    assert data[start - 1 - k] == k
    assert b"joblib.numpy_pickle" in data[:start]
    assert b"NumpyArrayWrapper" in data[:start]


@pytest.mark.parametrize("mode", ["r", "r+", "c", "w+"])
def test_mmap_modes(folder, mode):
    value = {
        "a": np.arange(BIG, dtype=np.float64),
        "f": np.asfortranarray(np.ones((300, 300))),
    }
    dump(value, folder / "m.pkl")
    got = load(folder / "m.pkl", mmap_mode=mode)
    for key in value:
        assert isinstance(got[key], np.memmap)
        assert got[key].ctypes.data % 16 == 0
        assert np.array_equal(got[key], value[key])
    assert got["f"].flags.f_contiguous
    if mode in ("r+", "w+"):
        got["a"][0] = -1.0
        got["a"].flush()
        del got
        gc.collect()
        assert load(folder / "m.pkl")["a"][0] == -1.0
    elif mode == "r":
        with pytest.raises(ValueError):
            got["a"][0] = 1.0
        del got
    gc.collect()


def test_mmap_keeps_byte_order(folder):
    arr = np.arange(BIG, dtype=">f8")
    dump(arr, folder / "b.pkl")
    mm = load(folder / "b.pkl", mmap_mode="r")
    assert mm.dtype == np.dtype(">f8")
    assert load(folder / "b.pkl").dtype == np.dtype("=f8")
    assert load(folder / "b.pkl", ensure_native_byte_order=False).dtype == np.dtype(
        ">f8"
    )
    small = np.arange(5, dtype=">i4")
    dump(small, folder / "s.pkl")
    assert load(folder / "s.pkl").dtype.isnative
    del mm
    gc.collect()


def test_memmap_input_is_stored_as_array(folder):
    src = np.memmap(folder / "src.dat", dtype=np.float64, mode="w+", shape=(BIG,))
    src[:] = 7.0
    dump({"m": src, "s": src[:10]}, folder / "mm.pkl")
    got = load(folder / "mm.pkl")
    assert type(got["m"]) is np.ndarray and np.all(got["m"] == 7.0)
    assert type(got["s"]) is np.ndarray
    del src
    gc.collect()


def test_file_object_with_arrays():
    value = _arrays()
    buf = io.BytesIO()
    dump(value, buf)
    dump("after", buf)
    buf.seek(0)
    _check(load(buf), value)
    assert load(buf) == "after"


def test_protocol_below_5_uses_plain_pickle(folder):
    arr = np.arange(BIG)
    dump(arr, folder / "p4.pkl", protocol=4)
    assert b"NumpyArrayWrapper" not in (folder / "p4.pkl").read_bytes()
    assert np.array_equal(load(folder / "p4.pkl"), arr)


def test_peak_memory_of_load_is_about_the_data(folder):
    arr = np.random.default_rng(1).random(4_000_000)  # 32 MB
    for compress in (0, ("zstd", 3), ("zlib", 1), ("zstd", 1, "in memory")):
        if compress and len(compress) == 3:  # small enough to decompress in RAM
            arr = arr[:3_000_000].copy()
            compress = compress[:2]
        if compress and compress[0] == "zstd":
            pytest.importorskip("zstandard")
        dump(arr, folder / "big.pkl", compress=compress)
        gc.collect()
        tracemalloc.start()
        try:
            got = load(folder / "big.pkl")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert np.array_equal(got, arr)
        assert peak <= 1.1 * arr.nbytes + 2**20 * 8, (compress, peak)
        del got


def test_no_numpy_import_for_plain_dump(folder):
    # The pickler only looks at numpy if it is already imported.
    assert "numpy" in sys.modules
    dump([1, 2], folder / "x.pkl")
    assert pickle.loads((folder / "x.pkl").read_bytes()) == [1, 2]


def test_public_placeholders_match_joblib_names():
    w = para_persist.NumpyArrayWrapper(np.ndarray, (3,), "C", np.dtype("f8"))
    assert w.numpy_array_alignment_bytes == 16
    assert para_persist.NDArrayWrapper("f.npy", np.ndarray).allow_mmap
    assert para_persist.ZNDArrayWrapper("f.z", (np.ndarray, (0,), b"b"), ()).filename


def test_map_survives_atomic_replacement(folder):
    dump(np.zeros(BIG), folder / "r.pkl")
    mapped = load(folder / "r.pkl", mmap_mode="r")
    dump(np.ones(BIG), folder / "r.pkl")
    assert not mapped.any()  # still the old file's pages
    assert load(folder / "r.pkl").all()
    del mapped
    gc.collect()


@pytest.mark.parametrize("n", [BIG, 3 * BIG])  # under / over the whole-read bound
def test_whole_file_read_gives_independent_writable_arrays(folder, n):
    path = folder / "x.pkl"
    ref = np.arange(n, dtype=np.float64)
    dump({"a": ref, "b": ref + 1, "c": ref[:5]}, path)
    out = load(path)
    for name in "abc":
        assert out[name].flags.writeable
    out["a"][:] = -1
    out["c"][:] = -2
    np.testing.assert_array_equal(out["b"], ref + 1)
    np.testing.assert_array_equal(load(path)["a"], ref)


def _small_arrays():
    rng = np.random.default_rng(3)
    return {
        "f8": rng.random(16),
        "be": np.arange(12, dtype=">i4"),
        "fortran": np.asfortranarray(rng.random((5, 7))),
        "c2d": rng.random((3, 4)),
        "zero_d": np.array(7, dtype=np.int16),
        "empty": np.empty((0, 4)),
        "dt": np.arange(6).astype("M8[D]"),
        "struct": np.zeros(4, dtype=[("a", "<i2"), ("b", ">f4")]),
        "matrix": np.matrix([[1.0, 2.0]]),
        "u1": np.arange(200, dtype=np.uint8),
    }


@pytest.mark.parametrize("with_big", [False, True])
@pytest.mark.parametrize("native", [True, False])
def test_many_small_arrays_fast_path(folder, with_big, native):
    # Small file: held whole in memory; with a 2 MB array the small blocks
    # are gathered from the index and the big one read on its own.
    value = {f"k{i}": _small_arrays() for i in range(50)}
    if with_big:
        value["big"] = np.arange(250_000, dtype=np.float64)
    path = folder / "s.pkl"
    dump(value, path)
    got = load(path, ensure_native_byte_order=native)
    assert got.keys() == value.keys()
    for key, want in value.items():
        if key == "big":
            assert np.array_equal(got[key], want)
            continue
        for name, arr in want.items():
            out = got[key][name]
            assert type(out) is type(arr), name
            assert out.shape == arr.shape and np.array_equal(out, arr), name
            if arr.dtype.fields is None:
                assert out.dtype.isnative if native else out.dtype == arr.dtype
            assert out.flags.f_contiguous == arr.flags.f_contiguous, name
            assert out.flags.writeable, name
    # Each loaded array owns its memory: writing one leaves the others alone.
    got["k0"]["f8"][0] = -1.0
    assert got["k1"]["f8"][0] == value["k1"]["f8"][0]
