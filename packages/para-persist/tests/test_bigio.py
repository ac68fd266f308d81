"""Big raw array blocks written and read by two threads (``_bigio``)."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

np = pytest.importorskip("numpy")

import para_persist  # noqa: E402
from para_persist import CorruptFileError, _bigio, _checksum, dump, load  # noqa: E402

N = 300_000  # float64 items: 2.4 MB, many pieces at the sizes set below


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch):
    """Thresholds scaled down so that small arrays take the threaded path."""
    monkeypatch.setattr(_bigio, "THREADED_MIN", 1024**2)
    # Not page aligned; a piece is a checksum chunk (the file's sums then use
    # this chunk size too, written and read in this process).
    monkeypatch.setattr(_bigio, "_PIECE", 256 * 1024 + 8)
    monkeypatch.setattr(_checksum, "CHUNK", 256 * 1024 + 8)
    for step in ("_WRITE_STEP", "_FILL_STEP", "_READ_STEP"):
        monkeypatch.setattr(_bigio, step, 64 * 1024)
    before = threading.active_count()
    yield
    _join_releases()
    assert threading.active_count() == before, "an I/O thread was left running"


def _join_releases():
    """Wait for the threads that close replaced files (they end at once)."""
    for thread in threading.enumerate():
        if thread.name == "para_persist-release":
            thread.join(10)


@pytest.fixture
def slow_worker(monkeypatch):
    """The worker thread's writes take a while, so the caller gets pieces."""
    real = _bigio._pwrite

    def pwrite(fd, data, offset):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.005)
        return real(fd, data, offset)

    monkeypatch.setattr(_bigio, "_pwrite", pwrite)


def _value():
    rng = np.random.default_rng(1)
    return {
        "a": rng.random(N),
        "tiny": np.arange(5),
        "f": np.asfortranarray(rng.integers(0, 9, size=(700, 500))),
        "t": np.arange(N).astype("datetime64[s]"),
        "s": "after the arrays",
    }


def _check(got, value):
    assert got.keys() == value.keys()
    for k, v in value.items():
        if isinstance(v, np.ndarray):
            assert got[k].dtype == v.dtype and got[k].shape == v.shape
            np.testing.assert_array_equal(got[k], v)
        else:
            assert got[k] == v


@pytest.mark.parametrize("mapped", [True, False])
def test_threaded_dump_and_load_round_trip(folder, monkeypatch, mapped):
    if not mapped:
        monkeypatch.setattr(_bigio, "_LINUX", False)  # pwrite on both sides
    calls = {"w": 0, "r": 0}
    real_w, real_r = _bigio.write_at, _bigio.read_at

    def write_at(*a):
        calls["w"] += 1
        return real_w(*a)

    def read_at(*a):
        calls["r"] += 1
        return real_r(*a)

    monkeypatch.setattr(_bigio, "write_at", write_at)
    monkeypatch.setattr(_bigio, "read_at", read_at)
    value = _value()
    path = folder / "v.pkl"
    dump(value, path)
    _check(load(path), value)
    assert calls == {"w": 3, "r": 3}
    # Same bytes as the single-threaded writer: a file object takes that path.
    with open(folder / "plain.pkl", "wb") as f:
        dump(value, f)
    assert path.read_bytes() == (folder / "plain.pkl").read_bytes()


def test_threaded_dump_still_memory_maps(folder, monkeypatch, slow_worker):
    fills = []
    real_fill = _bigio._Mapping.fill
    monkeypatch.setattr(
        _bigio._Mapping, "fill", lambda *a: fills.append(1) or real_fill(*a)
    )
    value = _value()
    dump(value, folder / "v.pkl")
    got = load(folder / "v.pkl", mmap_mode="r")
    assert isinstance(got["a"], np.memmap)
    _check(got, value)
    del got
    if _bigio._LINUX:
        assert fills, "the caller filled no piece through the mapping"


def test_mapping_refused_or_population_failing_falls_back(
    folder, monkeypatch, slow_worker
):
    value = _value()
    fills = {"n": 0}
    real_fill = _bigio._Mapping.fill

    def fill_then_fail(self, data, lo, hi, total):
        fills["n"] += 1
        if fills["n"] > 1:
            # Half a piece copied, then the pages cannot be had (full disk).
            mid = lo + (hi - lo) // 2
            real_fill(self, data, lo, mid, total)
            return mid
        return real_fill(self, data, lo, hi, total)

    monkeypatch.setattr(_bigio._Mapping, "fill", fill_then_fail)
    dump(value, folder / "v.pkl")
    _check(load(folder / "v.pkl"), value)
    assert fills["n"] >= 2

    def no_map(*a, **k):
        raise OSError(errno.ENODEV, "no shared mappings here")

    monkeypatch.setattr(_bigio.mmap, "mmap", no_map)
    dump(value, folder / "w.pkl")
    _check(load(folder / "w.pkl"), value)


@pytest.mark.parametrize("side", ["worker", "caller"])
def test_failing_thread_keeps_old_file_and_leaves_nothing(folder, monkeypatch, side):
    path = folder / "v.pkl"
    dump({"old": 1}, path)
    monkeypatch.setattr(_bigio, "_LINUX", False)
    real = os.pwrite

    def pwrite(fd, data, offset):
        # The failing side fails at once; the other one is slow, so that
        # the failing side surely gets a piece.
        caller = threading.current_thread() is threading.main_thread()
        if caller == (side == "caller"):
            raise OSError(errno.ENOSPC, "No space left on device")
        time.sleep(0.005)
        return real(fd, data, offset)

    monkeypatch.setattr(_bigio, "_pwrite", pwrite)
    with pytest.raises(OSError) as info:
        dump(_value(), path)
    assert info.value.errno == errno.ENOSPC
    assert load(path) == {"old": 1}
    assert sorted(p.name for p in folder.iterdir()) == ["v.pkl"]


def test_truncated_big_block_is_reported(folder):
    value = _value()
    path = folder / "v.pkl"
    dump(value, path)
    data = path.read_bytes()
    # Keep the index (so the checks before reading pass) but lose array data.
    cut = data[:2_000_000]
    path.write_bytes(cut)
    with pytest.raises(CorruptFileError):
        load(path)


def test_read_at_reports_a_short_file(tmp_path):
    path = tmp_path / "short"
    path.write_bytes(b"x" * 3_000_000)
    out = np.empty(3_000_000, np.uint8)
    with open(path, "rb") as f:
        with pytest.raises(CorruptFileError, match="truncated"):
            _bigio.read_at(f.fileno(), 100, out)
        _bigio.read_at(f.fileno(), 0, out)
    assert out.tobytes() == b"x" * 3_000_000


def test_threaded_read_of_a_file_written_single_threaded(folder, monkeypatch):
    value = _value()
    with open(folder / "v.pkl", "wb") as f:
        dump(value, f)
    calls = []
    real = _bigio.read_at
    monkeypatch.setattr(_bigio, "read_at", lambda *a: calls.append(1) or real(*a))
    _check(load(folder / "v.pkl"), value)
    assert len(calls) == 3
    assert para_persist.__version__


# -- a replaced big file is freed by a thread --------------------------------


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_replacing_a_big_file_frees_it_in_a_thread(tmp_path, monkeypatch):
    path = tmp_path / "big.pkl"
    first, second = np.zeros(N), np.ones(N)
    dump(first, path)
    old_inode = path.stat().st_ino
    fds = _open_fds()
    held = []
    real_release = _bigio.release

    def spy(fd):
        held.append(fd)
        real_release(fd)

    monkeypatch.setattr(_bigio, "release", spy)
    dump(second, path)
    assert len(held) == 1 and held[0] is not None  # the old file was held
    _join_releases()
    assert _open_fds() == fds  # and its descriptor closed
    assert path.stat().st_ino != old_inode
    assert np.array_equal(load(path), second)
    assert [p.name for p in tmp_path.iterdir()] == ["big.pkl"]


def test_only_big_regular_files_are_held(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"x" * 10)
    assert _bigio.hold_replaced(str(small)) is None
    assert _bigio.hold_replaced(str(tmp_path / "missing")) is None
    big = tmp_path / "big"
    big.write_bytes(b"x" * _bigio.THREADED_MIN)
    link = tmp_path / "link"
    link.symlink_to(big)
    assert _bigio.hold_replaced(str(link)) is None  # the link is replaced, not big
    fd = _bigio.hold_replaced(str(big))
    assert fd is not None
    _bigio.release(fd)
    _join_releases()
    with pytest.raises(OSError):
        os.fstat(fd)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert _bigio.hold_replaced(str(fifo)) is None  # and opening it did not block


def test_threaded_read_checks_every_piece(folder):
    arr = np.arange(N, dtype=np.float64)
    dump(arr, folder / "a.pkl")
    good = (folder / "a.pkl").read_bytes()
    # One flipped bit in the first, a middle and the last piece of the block.
    for where in (1000, len(good) // 2, len(good) - 2000):
        bad = bytearray(good)
        bad[where] ^= 8
        (folder / "a.pkl").write_bytes(bad)
        with pytest.raises(CorruptFileError, match="checksum mismatch in the array"):
            load(folder / "a.pkl")
    (folder / "a.pkl").write_bytes(good)
    np.testing.assert_array_equal(load(folder / "a.pkl"), arr)
