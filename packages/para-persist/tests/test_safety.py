"""Damaged files, safe loading, atomic writes."""

from __future__ import annotations

import errno
import io
import os
import pickle
import struct
import sys
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import para_persist
from para_persist import (
    CorruptFileError,
    LoadLimitError,
    UnsafeLoadError,
    dump,
    load,
)

try:
    import numpy as np
except ImportError:
    np = None


def _seed_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    value = {"list": [1, 2.5, "x", (None, True)], "bytes": b"\x00" * 300, "n": 2**70}
    seeds = {}
    for name, compress in [("plain", 0), ("zlib", 3), ("gzip", 3), ("xz", 1)]:
        dump(value, folder / name, compress=compress)
        seeds[name] = (folder / name).read_bytes()
    try:
        import zstandard  # noqa: F401
    except ImportError:
        seeds["zstd"] = seeds["xz"]
    else:
        dump(value, folder / "zs", compress="zstd")
        seeds["zstd"] = (folder / "zs").read_bytes()
    dump(value, folder / "p2", protocol=2)
    seeds["proto2"] = (folder / "p2").read_bytes()
    if np is not None:
        arrays = {
            "a": np.arange(9000.0),
            "o": np.array([1, "s"], dtype=object),
            "s": np.arange(4),
        }
        dump(arrays, folder / "arr")
        seeds["arrays"] = (folder / "arr").read_bytes()
        dump(arrays, folder / "arrz", compress=("zlib", 1))
        seeds["arrays_zlib"] = (folder / "arrz").read_bytes()
        if "zstandard" in sys.modules:
            dump(arrays, folder / "arrzs", compress="zstd")
            seeds["arrays_zstd"] = (folder / "arrzs").read_bytes()
    return seeds


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_files(tmp_path_factory)


@pytest.fixture(scope="module")
def joblib_seed(joblib_files):
    return (joblib_files / "joblib_0.11.0_pickle_py36_np111.pkl").read_bytes()


SEED_NAMES = ["plain", "zlib", "gzip", "xz", "zstd", "proto2"]
SEED_NAMES += ["arrays", "arrays_zlib", "arrays_zstd"]

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("len"), st.integers(0, 10**6), st.integers(0, 7)),
)


def _mutate(data: bytes, muts) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in muts:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= 1 << arg
        elif kind == "set":
            buf[pos] = arg
        elif kind == "cut":
            del buf[pos:]
        elif kind == "insert":
            buf.insert(pos, arg)
        else:  # a huge 8-byte length where a length field may be
            buf[pos : pos + 8] = struct.pack("<Q", 2**62 >> arg)
    return bytes(buf)


def _load_only_documented_error(tmp_path, data: bytes):
    path = tmp_path / "fuzz.pkl"
    path.write_bytes(data)
    for source in (path, io.BytesIO(data)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load(source, trusted=False)
        except CorruptFileError:
            pass
        except UnsafeLoadError:
            pass  # a mutated global name, refused before import
        except LoadLimitError:
            pass  # a mutated length asks for more than the machine's memory


@settings(max_examples=1500)
@given(
    st.sampled_from(
        [
            "plain",
            "zlib",
            "gzip",
            "xz",
            "proto2",
            "arrays",
            "arrays_zlib",
            "zstd",
            "arrays_zstd",
        ]
    ),
    st.lists(mutation, min_size=1, max_size=4),
)
def test_fuzzed_para_files_raise_only_corrupt_file_error(
    tmp_path_factory, seeds, name, muts
):
    if name not in seeds:
        name = "plain"
    _load_only_documented_error(
        tmp_path_factory.getbasetemp(), _mutate(seeds[name], muts)
    )


@settings(max_examples=800)
@given(st.lists(mutation, min_size=1, max_size=3))
def test_fuzzed_joblib_files_raise_only_corrupt_file_error(
    tmp_path_factory, joblib_seed, muts
):
    pytest.importorskip("numpy")
    _load_only_documented_error(
        tmp_path_factory.getbasetemp(), _mutate(joblib_seed, muts)
    )


@pytest.mark.parametrize("keep", [0, 1, 5, 40, -30, -1])
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_truncated_files(folder, seeds, keep):
    for data in seeds.values():
        cut = data[:keep]
        (folder / "t.pkl").write_bytes(cut)
        with pytest.raises(CorruptFileError):
            load(folder / "t.pkl")


def test_not_a_pickle_and_huge_lengths(folder):
    for data in [
        b"hello world, certainly not a pickle",
        b"\x80\x05\x8e" + struct.pack("<Q", 2**62) + b"ab",  # BINBYTES8 of 4 EiB
        b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b"ab",  # BYTEARRAY8 of 1 TiB
    ]:
        (folder / "x.pkl").write_bytes(data)
        with pytest.raises(CorruptFileError) as info:
            load(folder / "x.pkl")
        assert isinstance(info.value, pickle.UnpicklingError)
        assert isinstance(info.value, ValueError)


def test_huge_memo_index_is_harmless(folder):
    # Valid pickle; the C unpickler would allocate a 2**32-slot memo for it,
    # so files that are not para's (checksummed) go through the stream reader.
    (folder / "m.pkl").write_bytes(b"\x80\x02]r\xff\xff\xff\x7f.")
    assert load(folder / "m.pkl") == []


def test_huge_array_shape_is_refused_before_allocation(folder):
    np = pytest.importorskip("numpy")
    # A joblib-format stream whose placeholder claims 8 PB of data.
    wrapper = para_persist.NumpyArrayWrapper(
        np.ndarray, (10**15,), "C", np.dtype("f8"), allow_mmap=True
    )
    data = pickle.dumps(wrapper, protocol=2)[:-1] + b"\x01\xff" + b"\x00" * 64
    (folder / "h.pkl").write_bytes(data)
    with pytest.raises(CorruptFileError, match="does not fit"):
        load(folder / "h.pkl")
    with pytest.raises(CorruptFileError):
        load(io.BytesIO(data))


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("compress", [0, "zlib"])
def test_safe_load_refuses_os_system_and_runs_nothing(folder, compress):
    marker = folder / "pwned"
    dump({"x": [1, _Evil(marker)]}, folder / "evil.pkl", compress=compress)
    with pytest.raises(UnsafeLoadError, match=r"'(posix|nt|os)\.system'") as info:
        load(folder / "evil.pkl", trusted=False)
    assert isinstance(info.value, pickle.UnpicklingError)
    assert not marker.exists()
    with open(folder / "evil.pkl", "rb") as f, pytest.raises(UnsafeLoadError):
        load(f, trusted=False)
    assert not marker.exists()


def test_safe_load_refuses_other_code_paths(folder):
    payloads = [
        b"cbuiltins\neval\n(S'1'\ntR.",  # protocol 0 GLOBAL + REDUCE
        b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93\x8c\x011\x85R.",  # STACK_GLOBAL
        b"(cos\nsystem\nS'true'\no.",  # INST-like OBJ opcode
        b"\x80\x02cbuiltins\ngetattr\nq\x00.",
        b"\x80\x02c__builtin__\ngetattr\n.",
        b"\x80\x05\x8c\x04data\x94Q.",  # persistent id
    ]
    for data in payloads:
        (folder / "p.pkl").write_bytes(data)
        with pytest.raises((UnsafeLoadError, CorruptFileError)):
            load(folder / "p.pkl", trusted=False)


class _Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("cannot pickle this one")


class _Interrupt:
    def __reduce__(self):
        raise KeyboardInterrupt


class _NoSpace:
    def __reduce__(self):
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("compress", [0, "zlib", "xz"])
@pytest.mark.parametrize(
    ("bad", "exc"),
    [
        (_Unpicklable, pickle.PicklingError),
        (_Interrupt, KeyboardInterrupt),
        (_NoSpace, OSError),
    ],
)
def test_failed_dump_keeps_old_file(folder, compress, bad, exc):
    path = folder / "data.pkl"
    dump({"old": True}, path, compress=compress)
    before = path.read_bytes()
    value = {"big": b"x" * 300000, "list": list(range(10000)), "bad": bad()}
    with pytest.raises(exc):
        dump(value, path, compress=compress)
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["data.pkl"]


def test_enospc_at_fsync_keeps_old_file(folder, monkeypatch):
    path = folder / "data.pkl"
    dump("old", path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        dump("new", path)
    monkeypatch.undo()
    assert load(path) == "old"
    assert sorted(p.name for p in folder.iterdir()) == ["data.pkl"]


class _FullDisk(io.RawIOBase):
    """File object that accepts a few KB then fails like a full disk."""

    def __init__(self, room):
        self.room = room
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, b):
        n = memoryview(b).nbytes
        if len(self.data) + n > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data += bytes(b)
        return n


def test_enospc_from_a_file_object_propagates():
    with pytest.raises(OSError, match="No space"):
        dump(list(range(100000)), _FullDisk(2000))


def test_corrupt_error_is_public_and_documented():
    assert issubclass(para_persist.CorruptFileError, pickle.UnpicklingError)
    assert issubclass(para_persist.CorruptFileError, ValueError)
    assert issubclass(para_persist.UnsafeLoadError, pickle.UnpicklingError)
    assert para_persist.CorruptFileError.__doc__


def test_object_array_state_shorter_than_shape_is_refused(folder):
    np = pytest.importorskip("numpy")
    # numpy itself crashes on this state; load must refuse it first.
    arr = np.array([1, 2], dtype=object)
    data = pickle.dumps(arr, protocol=2)
    bad = data.replace(b"K\x02\x85", b"K\x05\x85", 1)
    assert bad != data
    (folder / "o.pkl").write_bytes(bad)
    for trusted in (True, False):
        with pytest.raises(CorruptFileError, match="object array of 5 items"):
            load(folder / "o.pkl", trusted=trusted)
