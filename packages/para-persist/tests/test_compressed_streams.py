"""Compressed para streams: small ones are read whole into memory and run
through the C unpickler, bigger ones are read on from the look-ahead; a
moderate zstd stream is compressed from the only copy of the pickle."""

from __future__ import annotations

import gc
import io
import pickle
import tracemalloc

import pytest

from para_persist import CorruptFileError, _read, dump, load
from para_persist._index import Resumed, read_ahead

METHODS = ["zlib", "gzip", "bz2", "xz", "lz4"]


def _needs(method):
    if method == "lz4":
        pytest.importorskip("lz4.frame")


class _ReadOnly:
    """Only ``read``: no peek, seek, tell nor fileno."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n=-1):
        return self._f.read(n)


@pytest.fixture
def fast_loads(monkeypatch):
    """Count the loads that took the in-memory (C unpickler) path."""
    calls = []
    real = _read.fast_load

    def spy(f, size, ctx):
        calls.append(size)
        return real(f, size, ctx)

    monkeypatch.setattr(_read, "fast_load", spy)
    return calls


def _value():
    return {
        "ints": list(range(3000)),
        "text": ["été", "para"] * 100,
        "nested": {"t": (None, True, 2.5), "b": b"\x00\xff" * 40_000},
    }


@pytest.mark.parametrize("method", METHODS)
def test_small_compressed_stream_loads_in_memory(folder, fast_loads, method):
    _needs(method)
    value = _value()
    path = folder / "v.pkl"
    dump(value, path, compress=(method, 1))
    data = path.read_bytes()
    for source in (path, io.BytesIO(data), _ReadOnly(data)):
        for trusted in (True, False):
            fast_loads.clear()
            assert load(source if trusted else path, trusted=trusted) == value
            assert len(fast_loads) == 1


@pytest.mark.parametrize("method", ["zlib", "lz4"])
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_stream_longer_than_the_look_ahead_is_read_on(
    folder, fast_loads, monkeypatch, method, protocol
):
    # Protocols 0-3 read names with readline, 4-5 read frames: every read
    # crosses from the look-ahead into the rest of the stream somewhere.
    _needs(method)
    monkeypatch.setattr(_read, "_READ_AHEAD", 1000)
    value = _value()
    path = folder / "v.pkl"
    dump(value, path, compress=(method, 1), protocol=protocol)
    data = path.read_bytes()
    for source in (path, io.BytesIO(data), _ReadOnly(data)):
        for trusted in (True, False):
            got = load(source if trusted else path, trusted=trusted)
            assert got == value
    assert not fast_loads


@pytest.mark.parametrize("limit", [10**9, 1000])  # in memory / read on
def test_damaged_or_cut_compressed_streams_are_refused(folder, monkeypatch, limit):
    monkeypatch.setattr(_read, "_READ_AHEAD", limit)
    value = _value()
    path = folder / "v.pkl.z"
    dump(value, path, compress=("zlib", 1))
    data = path.read_bytes()
    for at in range(2, len(data), max(1, len(data) // 50)):
        bad = bytearray(data)
        bad[at] ^= 0x10
        path.write_bytes(bad)
        try:
            got = load(path)
        except CorruptFileError:
            continue
        assert got == value, at
    for cut in (4, len(data) // 2):
        path.write_bytes(data[:-cut])
        with pytest.raises(CorruptFileError):
            load(path)


def test_arrays_of_an_in_memory_load(folder, fast_loads):
    np = pytest.importorskip("numpy")
    value = {
        "big": np.arange(100_000, dtype=np.float64),  # a view of the buffer
        "other": np.arange(50_000, dtype=np.int64),
        "be": np.arange(100, dtype=">i8"),
        "small": np.arange(10, dtype=np.float32),
        "objects": np.array([1, "two", None], dtype=object),
    }
    path = folder / "a.pkl.gz"
    dump(value, path)
    got = load(path)
    assert fast_loads
    for key, want in value.items():
        assert np.array_equal(got[key], want), key
        assert got[key].flags.writeable
    assert got["be"].dtype == np.dtype("=i8")
    got["big"][:] = -1  # independent of the other arrays
    assert np.array_equal(got["other"], value["other"])
    assert load(path, ensure_native_byte_order=False)["be"].dtype == np.dtype(">i8")


def test_read_on_holds_at_most_the_look_ahead(folder, monkeypatch):
    # 24 MB that zlib packs into far less than the look-ahead: the load holds
    # the look-ahead besides what a plain stream read holds, no more.
    np = pytest.importorskip("numpy")
    arr = np.zeros(3_000_000)
    arr[::1000] = 1.0
    path = folder / "z.pkl.z"
    dump(arr, path)
    look_ahead = _read._READ_AHEAD
    assert path.stat().st_size < look_ahead < arr.nbytes
    peaks = []
    for limit in (look_ahead, -1):  # -1: no look-ahead at all
        monkeypatch.setattr(_read, "_READ_AHEAD", limit)
        gc.collect()
        tracemalloc.start()
        try:
            got = load(path)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert np.array_equal(got, arr)
        del got
    # The buffer grows in place: bytearray keeps 1/8 spare room.
    assert peaks[1] < peaks[0] <= peaks[1] + 1.2 * look_ahead, peaks


def test_read_ahead_and_resumed_read_like_one_stream():
    data = b"".join(b"line %d\n" % i for i in range(300)) + b"tail"
    head, whole = read_ahead(io.BytesIO(data), 10**6)
    assert whole and head == data
    head, whole = read_ahead(io.BytesIO(data), 999)
    assert not whole and head == data[:1000]
    ops = [("read", 5), ("readline", -1), ("peek", 3), ("readinto", 400),
           ("readline", 3), ("read", 600), ("readline", -1), ("readinto", 50),
           ("read", -1), ("read", 10)]  # fmt: skip
    for cut in (0, 1, 7, 420, 1000, len(data)):
        rest = io.BufferedReader(io.BytesIO(data))
        rest.seek(cut)  # a decompressor that has given ``cut`` bytes
        resumed, plain = Resumed(bytearray(data[:cut]), rest), io.BytesIO(data)
        for op, n in ops:
            pos = plain.tell()
            assert resumed.tell() == pos
            if op == "readinto":
                a, b = bytearray(n), bytearray(n)
                assert resumed.readinto(a) == plain.readinto(b)
                assert a == b
            elif op == "peek":
                got = resumed.peek(n)
                assert got and data[pos:].startswith(got)
            else:
                assert getattr(resumed, op)(n) == getattr(plain, op)(n), (cut, op)


def test_moderate_zstd_dump_holds_one_copy_of_the_pickle(folder):
    pytest.importorskip("zstandard")
    np = pytest.importorskip("numpy")
    arr = np.random.default_rng(0).random(2_000_000)  # 16 MB: one-shot frames
    value = {"a": arr, "objects": list(range(1000))}
    gc.collect()
    tracemalloc.start()
    try:
        dump(value, folder / "m.zst")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The pickle once, plus the compressed frames (random doubles: ~95%).
    assert peak <= 2.1 * arr.nbytes, peak
    got = load(folder / "m.zst")
    assert np.array_equal(got["a"], arr) and got["objects"] == value["objects"]
