"""``load(max_bytes=...)`` and the nesting bound of ``trusted=False``.

Bombs are loaded in a subprocess that reports the error and how much its
peak resident memory grew during the load (``ru_maxrss``): a limit that only
fired after allocating would show up there, and a crash (C stack overflow)
as a negative return code.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import para_persist
from para_persist import CorruptFileError, LoadLimitError, dump, load

MiB = 1024**2
GiB = 1024**3

_RUNNER = r"""
import resource, sys
import para_persist
try:
    import numpy
except ImportError:
    pass
path, kwargs = sys.argv[1], eval(sys.argv[2])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    para_persist.load(path, **kwargs)
    out = "loaded"
except Exception as exc:
    out = f"{type(exc).__name__}: {exc}"
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(repr((out, grew / 1024)))
"""


def _load_in_child(path: Path, **kwargs) -> tuple[str, float]:
    """(outcome, MiB the peak RSS grew by) of ``load(path, **kwargs)``."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(path), repr(kwargs)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"load crashed ({proc.returncode}): {proc.stderr}"
    return eval(proc.stdout.strip().splitlines()[-1])


# -- compression bombs --------------------------------------------------------


def _compressors():
    out = {
        "zlib": lambda: zlib.compressobj(1, zlib.DEFLATED, 15),
        "gzip": lambda: zlib.compressobj(1, zlib.DEFLATED, 31),
        "bz2": lambda: bz2.BZ2Compressor(1),
        "lzma": lambda: lzma.LZMACompressor(lzma.FORMAT_ALONE, preset=0),
        "xz": lambda: lzma.LZMACompressor(lzma.FORMAT_XZ, preset=0),
    }
    try:
        import lz4.frame

        class _Lz4:
            def __init__(self):
                self._c = lz4.frame.LZ4FrameCompressor()
                self._started = False

            def compress(self, data):
                head = b"" if self._started else self._c.begin()
                self._started = True
                return head + self._c.compress(data)

            def flush(self):
                return self._c.flush()

        out["lz4"] = _Lz4
    except ImportError:
        pass
    try:
        import zstandard

        out["zstd"] = lambda: zstandard.ZstdCompressor(level=1).compressobj()
    except ImportError:
        pass
    return out


COMPRESSORS = _compressors()


def _write_compressed(path: Path, method: str, head: bytes, zeros: int, tail=b""):
    """``head``, ``zeros`` zero bytes and ``tail``, compressed piece by piece
    (the zeros are never all in memory)."""
    comp = COMPRESSORS[method]()
    chunk = bytes(8 * MiB)
    with open(path, "wb") as f:
        f.write(comp.compress(head))
        left = zeros
        while left:
            n = min(left, len(chunk))
            f.write(comp.compress(chunk[:n]))
            left -= n
        f.write(comp.compress(tail))
        f.write(comp.flush())


def _array_head(nbytes: int) -> bytes:
    """A joblib array placeholder for ``nbytes`` of uint8, up to where the
    array's raw data starts (one padding-length byte of 0 included)."""
    np = pytest.importorskip("numpy")
    wrapper = para_persist.NumpyArrayWrapper(
        np.ndarray, (nbytes,), "C", np.dtype("uint8"), allow_mmap=True
    )
    stream = pickle.dumps(wrapper, protocol=2)
    assert stream.endswith(b"b.")  # BUILD, STOP: the data goes between
    return stream[:-1] + b"\x00"


@pytest.mark.parametrize("method", sorted(COMPRESSORS))
def test_array_bomb_refused_before_decompressing(folder, method):
    # 64 MiB of real zeros behind a placeholder that announces 10 GiB: a
    # loader that allocated first would grow by the 64 MiB it decompresses.
    path = folder / f"bomb.pkl.{method}"
    _write_compressed(path, method, _array_head(10 * GiB), 64 * MiB)
    assert path.stat().st_size < 2 * MiB
    out, grew = _load_in_child(path, max_bytes=256 * MiB)
    assert out.startswith(
        "LoadLimitError: loading this file needs more than "
        f"max_bytes={256 * MiB} bytes: array data asks for "
        f"{10 * GiB} bytes"
    ), out
    assert "pass a larger max_bytes" in out
    assert grew < 32, f"peak memory grew by {grew:.0f} MiB"


def test_zlib_bomb_of_one_gib(folder):
    # A real bomb: 1 GiB of zeros in 4.5 MiB (zlib level 1).
    path = folder / "bomb.pkl.z"
    _write_compressed(path, "zlib", _array_head(GiB), GiB, b".")
    assert path.stat().st_size < 5 * MiB
    limit = 100 * MiB
    for kwargs in ({"max_bytes": limit}, {"trusted": False, "max_bytes": limit}):
        out, grew = _load_in_child(path, **kwargs)
        assert out.startswith("LoadLimitError"), out
        assert grew < 32, f"peak memory grew by {grew:.0f} MiB"
    # The same file is a valid one: with room for it, it loads.
    out, grew = _load_in_child(path, max_bytes=GiB + MiB)
    assert out == "loaded"
    assert grew > 512


def test_trusted_false_refuses_more_than_the_machine_has_by_default(folder):
    path = folder / "bomb.pkl.z"
    _write_compressed(path, "zlib", _array_head(2**44), 8 * MiB)
    out, grew = _load_in_child(path, trusted=False)
    assert out.startswith("LoadLimitError"), out
    assert grew < 32
    # trusted=True has no default limit, as joblib: numpy refuses the 16 TiB.
    with pytest.raises(CorruptFileError, match=r"MemoryError|truncated"):
        load(path)


def _binbytes8(n: int) -> bytes:
    return b"\x80\x04\x8e" + struct.pack("<Q", n)


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(_binbytes8(10 * GiB), id="BINBYTES8"),
        pytest.param(b"\x80\x04\x8d" + struct.pack("<Q", 10 * GiB), id="BINUNICODE8"),
        pytest.param(b"\x80\x05\x96" + struct.pack("<Q", 10 * GiB), id="BYTEARRAY8"),
        pytest.param(b"\x80\x04\x95" + struct.pack("<Q", 10 * GiB), id="FRAME"),
        pytest.param(b"\x80\x02B" + struct.pack("<I", 2**31), id="BINBYTES"),
        pytest.param(b"V", id="protocol-0-line"),
    ],
)
@pytest.mark.parametrize("trusted", [True, False])
def test_pickle_payload_bombs(folder, head, trusted):
    # Payloads announce their size (or, for a text line, do not): each is
    # refused after reading at most max_bytes of the stream.
    path = folder / "payload.pkl.gz"
    _write_compressed(path, "gzip", head, 64 * MiB)
    out, grew = _load_in_child(path, trusted=trusted, max_bytes=16 * MiB)
    assert out.startswith("LoadLimitError"), out
    assert grew < 32, f"peak memory grew by {grew:.0f} MiB"


def test_data_after_the_pickle_is_counted(folder):
    # A tiny valid pickle followed by 1 GiB of zeros in the same stream:
    # load reads to the end of the stream (to check it), within the limit.
    path = folder / "tail.pkl.bz2"
    _write_compressed(path, "bz2", pickle.dumps([1, 2, 3], protocol=2), GiB // 4)
    out, _ = _load_in_child(path, max_bytes=16 * MiB)
    assert out.startswith(
        "LoadLimitError: loading this file needs more than "
        f"max_bytes={16 * MiB} bytes: data after the end of the "
        "pickle"
    ), out
    assert load(path) == [1, 2, 3]


def test_zstd_frame_announcing_its_size_is_checked_before_decompressing(folder):
    zstd = pytest.importorskip("zstandard")
    path = folder / "small.pkl.zst"
    dump(bytes(4 * MiB), path, compress="zstd")
    assert zstd.frame_content_size(path.read_bytes()[:18]) > 0  # sizes known
    with pytest.raises(LoadLimitError, match="the decompressed zstd stream"):
        load(path, max_bytes=2 * MiB)
    assert load(path, max_bytes=9 * MiB) == bytes(4 * MiB)


def test_uncompressed_huge_shape_with_tiny_body(folder):
    path = folder / "liar.pkl"
    path.write_bytes(_array_head(10 * GiB) + bytes(100) + b".")
    for kwargs in ({}, {"max_bytes": MiB}, {"trusted": False}):
        out, grew = _load_in_child(path, **kwargs)
        assert out.startswith("CorruptFileError: "), out
        assert "does not fit" in out
        assert grew < 32
    # Memory-mapped, the declared size is checked against the file as well.
    out, _ = _load_in_child(path, mmap_mode="r", max_bytes=MiB)
    assert "does not fit" in out


# -- what counts, and what loads just under the limit -------------------------

_ARRAY_BYTES = 4 * MiB


@pytest.mark.parametrize("compress", [0, *sorted(COMPRESSORS)])
def test_array_just_under_the_limit_loads(folder, compress):
    np = pytest.importorskip("numpy")
    arr = np.arange(_ARRAY_BYTES // 8, dtype=np.int64)
    path = folder / "a.pkl"
    dump({"a": arr}, path, compress=compress)
    got = load(path, max_bytes=_ARRAY_BYTES + 64 * 1024)
    np.testing.assert_array_equal(got["a"], arr)
    with pytest.raises(LoadLimitError, match=f"max_bytes={_ARRAY_BYTES - 1} "):
        load(path, max_bytes=_ARRAY_BYTES - 1)
    for trusted in (True, False):
        with open(path, "rb") as f:  # a file object: the stream reader
            got = load(f, trusted=trusted, max_bytes=_ARRAY_BYTES + 64 * 1024)
        np.testing.assert_array_equal(got["a"], arr)


@pytest.mark.parametrize("compress", [0, "zlib"])
@pytest.mark.parametrize("trusted", [True, False])
def test_bytes_payload_just_under_the_limit_loads(folder, compress, trusted):
    payload = b"x" * _ARRAY_BYTES
    path = folder / "b.pkl"
    dump([payload, "text"], path, compress=compress)
    # A plain para file without big arrays is read whole, then its pickle
    # bytes are gathered; a compressed stream of up to 8 MiB is decompressed
    # whole, then unpickled: two copies either way.
    room = 2 * _ARRAY_BYTES + 64 * 1024
    assert load(path, trusted=trusted, max_bytes=room) == [payload, "text"]
    with open(path, "rb") as f:  # a raw stream is unpickled as it is read
        got = load(
            f,
            trusted=trusted,
            max_bytes=(room if compress else _ARRAY_BYTES + 64 * 1024),
        )
    assert got == [payload, "text"]
    with pytest.raises(LoadLimitError):
        load(path, trusted=trusted, max_bytes=_ARRAY_BYTES - 1)


def test_memory_mapped_arrays_do_not_count(folder):
    np = pytest.importorskip("numpy")
    arr = np.ones(_ARRAY_BYTES, dtype=np.uint8)
    path = folder / "m.pkl"
    dump(arr, path)
    got = load(path, mmap_mode="r", max_bytes=64 * 1024)
    assert isinstance(got, np.memmap)
    assert int(got.sum()) == _ARRAY_BYTES
    del got
    with pytest.raises(LoadLimitError):
        load(path, max_bytes=64 * 1024)


def test_old_joblib_formats(folder, joblib_files):
    np = pytest.importorskip("numpy")
    import warnings

    # Files of joblib >= 0.10, every compressor (0.8-0.9 files: see
    # test_old_formats).
    samples = sorted(joblib_files.glob("joblib_*"))
    assert len(samples) > 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in samples:
            if path.suffix == ".lz4":
                pytest.importorskip("lz4.frame")
            assert load(path, max_bytes=64 * MiB) is not None
            with pytest.raises(LoadLimitError):
                load(path, max_bytes=100)
    # A ZF container announcing 1000x its size (zlib's limit) is refused
    # before it is decompressed.
    from para_persist._compat import write_zfile

    bomb = folder / "bomb.z"
    with open(bomb, "wb") as f:
        f.write(b"ZF" + f"{GiB:#x}".ljust(19).encode())
        comp = zlib.compressobj(9)
        chunk = bytes(8 * MiB)
        for _ in range(GiB // len(chunk)):
            f.write(comp.compress(chunk))
        f.write(comp.flush())
    assert bomb.stat().st_size < 2 * MiB
    out, grew = _load_in_child(bomb, max_bytes=100 * MiB)
    assert out.startswith("LoadLimitError"), out
    assert "zlib container asks for 1073741824 bytes" in out
    assert grew < 32
    # A sibling .npy whose header announces a huge shape.
    sibling = folder / "old.pkl_01.npy"
    with open(sibling, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (2**32,)}
        )
    main = folder / "old.pkl"
    wrapper = para_persist.NDArrayWrapper(sibling.name, np.ndarray)
    main.write_bytes(pickle.dumps(wrapper, protocol=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(LoadLimitError, match=r"a sibling \.npy array asks for"):
            load(main, max_bytes=GiB)
        # Within the limit, the ZF container loads.
        buf = io.BytesIO()
        write_zfile(buf, pickle.dumps(b"payload" * 1000, protocol=2))
        small = folder / "small.z"
        small.write_bytes(buf.getvalue())
        assert load(small, max_bytes=64 * 1024) == b"payload" * 1000
        with pytest.raises(LoadLimitError):
            load(small, max_bytes=1000)


def test_bad_max_bytes_values():
    for bad in (-1, 1.5, "lots", True):
        with pytest.raises(ValueError, match="max_bytes must be"):
            load(io.BytesIO(pickle.dumps(1)), max_bytes=bad)
    assert load(io.BytesIO(pickle.dumps(1)), max_bytes=None) == 1
    assert load(io.BytesIO(pickle.dumps(1)), max_bytes="auto", trusted=False) == 1


def test_limit_error_is_public_and_a_value_error():
    assert issubclass(LoadLimitError, ValueError)
    assert issubclass(LoadLimitError, pickle.UnpicklingError)
    assert not issubclass(LoadLimitError, CorruptFileError)
    assert para_persist.LoadLimitError is LoadLimitError
    assert "LoadLimitError" in para_persist.__all__


# -- nesting depth under trusted=False ----------------------------------------

N = 10**6


def _memo_chain(n: int, wrap: bytes, start: bytes = b"N") -> bytes:
    """``n`` levels, each made by ``wrap`` around the previous level, which
    is kept in memo slot 0 (LONG_BINGET/LONG_BINPUT), so that the stack stays
    flat while the nesting grows."""
    get, put = b"j" + struct.pack("<I", 0), b"r" + struct.pack("<I", 0)
    level = wrap.replace(b"@", get) + put + b"0"
    return b"\x80\x02" + start + put + b"0" + level * n + get + b"."


def _deque_chain(n: int) -> bytes:
    # Top-down: each new deque is appended to the previous one, which
    # already sits inside its parent.
    get0, put0 = b"j" + struct.pack("<I", 0), b"r" + struct.pack("<I", 0)
    put1, get1 = b"r" + struct.pack("<I", 1), b"j" + struct.pack("<I", 1)
    new = b"ccollections\ndeque\n)R"
    root = b"\x80\x02" + new + put0 + put1 + b"0"
    step = get1 + new + put1 + b"a0"  # prev.append(new); prev = new
    return root + step * n + get0 + b"."


def _object_array_chain(n: int) -> bytes:
    np = pytest.importorskip("numpy")
    template = pickle.dumps(np.array([None], dtype=object), protocol=2)
    item = template.index(b"Na")  # the one item, then APPEND
    body = template[2:item] + b"@" + template[item + 1 : -1]
    # The template's own memo slots are small numbers: slot 0 is ours.
    body = body.replace(b"q\x00", b"q\x07").replace(b"h\x00", b"h\x07")
    return _memo_chain(n, body)


_DEEP = {
    "MARK/LIST stack": lambda: b"\x80\x02" + b"(" * N + b"l" * N + b".",
    "lists": lambda: _memo_chain(N, b"]@a"),
    "tuples": lambda: b"\x80\x02N" + b"\x85" * N + b".",
    "dicts": lambda: _memo_chain(N, b"}X\x01\x00\x00\x00a@s"),
    "tuple as dict key": lambda: b"\x80\x02}N" + b"\x85" * N + b"K\x01s.",
    "frozenset of a tuple": lambda: (
        b"\x80\x02c__builtin__\nfrozenset\n(N" + b"\x85" * N + b"\x85R."
    ),
    "deques built top-down": lambda: _deque_chain(N),
    "object arrays": lambda: _object_array_chain(N),
}


@pytest.mark.parametrize("kind", sorted(_DEEP))
def test_deep_nesting_is_refused_cleanly(folder, kind):
    data = _DEEP[kind]()
    path = folder / "deep.pkl"
    path.write_bytes(data)
    out, _ = _load_in_child(path, trusted=False)
    assert out.startswith("LoadLimitError: nesting of "), out
    assert f"exceeds the limit of {2 * sys.getrecursionlimit()}" in out
    assert "trusted=True" in out


@pytest.mark.parametrize(
    "kind", ["tuple as dict key", "deques built top-down", "object arrays"]
)
def test_deep_nesting_crashes_plain_pickle(folder, kind):
    # The danger is real: plain pickle dies of a C stack overflow on these.
    data = _DEEP[kind]()
    path = folder / "deep.pkl"
    path.write_bytes(data)
    code = "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, timeout=300
    )
    assert proc.returncode < 0, proc.stderr


def test_nesting_within_the_limit_loads(folder):
    # Deep, though less than the pickler can write (it recurses once per
    # level, and the test runner's own frames count too).
    depth = sys.getrecursionlimit() // 4
    nested: list = []
    for _ in range(depth):
        nested = [nested]
    path = folder / "ok.pkl"
    path.write_bytes(pickle.dumps(nested, protocol=5))  # the C pickler
    got = load(path, trusted=False)
    for _ in range(depth):
        got = got[0]
    assert got == []
    mixed: tuple = ()
    for _ in range(depth // 3):
        mixed = ({"k": [mixed]},)
    path.write_bytes(pickle.dumps(mixed, protocol=5))
    assert load(path, trusted=False) == mixed
    # Reference cycles are not nesting.
    cyclic: dict = {"children": []}
    for i in range(1000):
        cyclic["children"].append({"parent": cyclic, "i": i})
    cyclic["self"] = cyclic
    dump(cyclic, path)
    got = load(path, trusted=False)
    assert got["self"] is got
    assert got["children"][999]["parent"] is got


def test_object_arrays_nested_in_joblib_pickles(folder):
    np = pytest.importorskip("numpy")
    inner = np.array([None], dtype=object)
    wrapper = para_persist.NumpyArrayWrapper(
        np.ndarray, (1,), "C", np.dtype(object), allow_mmap=False
    )
    head = pickle.dumps(wrapper, protocol=2)[:-1]  # up to BUILD
    path = folder / "nested.pkl"
    path.write_bytes(head * 100 + pickle.dumps(inner, protocol=2) + b"." * 100)
    for trusted in (True, False):
        with pytest.raises(LoadLimitError, match="32 pickles deep"):
            load(path, trusted=trusted)
