"""Round trips and argument checks that need no numpy."""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import os
import pickle
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

import para_persist
from para_persist import CompressorWrapper, dump, load, register_compressor

ALL = ["zlib", "gzip", "bz2", "lzma", "xz", "lz4", "zstd"]
EXT = {"zlib": ".z", "gzip": ".gz", "bz2": ".bz2", "lzma": ".lzma", "xz": ".xz",
       "lz4": ".lz4", "zstd": ".zst"}  # fmt: skip

leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
    | st.complex_numbers(allow_nan=False)
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers(), inner)
        | st.frozensets(st.integers() | st.text())
    ),
    max_leaves=30,
)


def _needs(method):
    if method == "lz4":
        pytest.importorskip("lz4.frame")
    if method == "zstd":
        pytest.importorskip("zstandard")


@given(values)
def test_roundtrip_any_builtin_value(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("rt") / "v.pkl"
    assert dump(value, path) == [str(path)]
    assert load(path) == value
    assert load(path, trusted=False) == value


@pytest.mark.parametrize("method", ALL)
def test_each_compressor_roundtrip_and_magic(folder, method):
    _needs(method)
    value = {"text": "été" * 1000, "n": list(range(5000)), "b": bytes(range(256)) * 400}
    path = folder / "v.pkl"
    dump(value, path, compress=(method, 3))
    head = path.read_bytes()[:6]
    assert head.startswith(para_persist._compressors._COMPRESSORS[method].prefix)
    assert load(path) == value
    # Extension alone selects the compressor.
    path2 = folder / ("w.pkl" + EXT[method])
    dump(value, path2)
    assert path2.read_bytes().startswith(
        para_persist._compressors._COMPRESSORS[method].prefix
    )
    assert load(path2) == value


def test_compress_argument_forms(folder):
    value = list(range(10000))
    path = folder / "v.pkl"
    for compress, magic in [
        (0, b"X"),
        (False, b"X"),
        (True, b"\x78"),
        (3, b"\x78"),
        ("gzip", b"\x1f\x8b"),
        (("bz2", 1), b"BZ"),
        (("zlib", 0), b"X"),
    ]:
        dump(value, path, compress=compress)
        assert path.read_bytes()[:1] == magic[:1], compress
        assert load(path) == value
    # A method named in compress wins over the extension.
    dump(value, folder / "v.gz", compress="bz2")
    assert (folder / "v.gz").read_bytes()[:2] == b"BZ"
    # Level 0 with a compressing extension means the default level.
    dump(value, folder / "v.z", compress=0)
    assert (folder / "v.z").read_bytes()[:1] == b"\x78"


@pytest.mark.parametrize(
    ("compress", "match"),
    [
        (("zlib", 3, 1), "exactly 2 elements"),
        # joblib's wording and quoting: the value in double quotes, as str.
        (("zlib", 10), 'Non valid compress level given: "10"'),
        (("zlib", "wrong"), 'Non valid compress level given: "wrong"'),
        (-1, 'Non valid compress level given: "-1"'),
        ("snappy", 'Non valid compression method given: "snappy"'),
        (("wrong", 3), 'Non valid compression method given: "wrong"'),
        (("zstd", 23), "Non valid compress level"),
        ("zlib-ish", "snappy|zlib-ish"),
    ],
)
def test_bad_compress_values(folder, compress, match):
    with pytest.raises(ValueError, match=match):
        dump([1], folder / "x.pkl", compress=compress)
    assert not (folder / "x.pkl").exists()


def test_bad_filename_and_protocol(folder):
    with pytest.raises(ValueError, match="Second argument should be a filename"):
        dump([1], 42)
    with pytest.raises(ValueError, match="protocol"):
        dump([1], folder / "x.pkl", protocol=99)
    with pytest.raises(ValueError, match="mmap_mode must be one of"):
        load(folder / "x.pkl", mmap_mode="rw")
    with pytest.raises(ValueError, match="Native byte ordering"):
        load(folder / "x.pkl", mmap_mode="r", ensure_native_byte_order=True)
    with pytest.raises(ValueError, match="allowed_globals only applies"):
        load(folder / "x.pkl", allowed_globals=["os.system"])
    with pytest.raises(ValueError, match="filename should be a path"):
        load(3.5)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_protocol(folder, protocol):
    value = {"a": [1, 2.5, "x"], "b": (None, True), "c": b"\x00\xff" * 50000}
    dump(value, folder / "p.pkl", protocol=protocol)
    assert load(folder / "p.pkl") == value


@pytest.mark.parametrize("compress", [0, "zlib", "gzip", "xz"])
def test_file_objects_and_sequential_dumps(compress):
    buf = io.BytesIO()
    assert dump({"first": 1}, buf, compress=compress) is None
    dump(["second", 2], buf, compress=compress)
    if compress == 0:
        buf.seek(0)
        assert load(buf) == {"first": 1}
        assert load(buf) == ["second", 2]
    buf2 = io.BytesIO()
    dump({"k": "v" * 100000}, buf2, compress=compress)
    buf2.seek(0)
    assert load(buf2) == {"k": "v" * 100000}


def test_stdlib_types_safe_mode(folder):
    value = {
        "od": collections.OrderedDict(a=1),
        "dq": collections.deque([1, 2]),
        "dt": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
        "d": datetime.date(2020, 2, 29),
        "td": datetime.timedelta(seconds=5),
        "dec": decimal.Decimal("1.25"),
        "set": {1, 2},
        "ba": bytearray(b"xy"),
        "c": 1 + 2j,
        "r": range(3, 9, 2),
        "s": slice(1, 5),
    }
    dump(value, folder / "s.pkl")
    assert load(folder / "s.pkl", trusted=False) == value


class _Point:
    def __init__(self, x):
        self.x = x

    def __eq__(self, other):
        return type(other) is _Point and other.x == self.x


def test_custom_classes_and_allowed_globals(folder):
    value = [_Point(3), _Point("y")]
    dump(value, folder / "c.pkl")
    assert load(folder / "c.pkl") == value
    with pytest.raises(para_persist.UnsafeLoadError, match=r"test_plain\._Point"):
        load(folder / "c.pkl", trusted=False)
    for allowed in ([f"{__name__}._Point"], [_Point], [(__name__, "_Point")]):
        assert load(folder / "c.pkl", trusted=False, allowed_globals=allowed) == value
    with pytest.raises(TypeError, match="single string"):
        load(folder / "c.pkl", trusted=False, allowed_globals="os.system")


def test_register_compressor_rules(folder):
    with pytest.raises(ValueError, match="should be a string"):
        register_compressor(1, CompressorWrapper(io.BytesIO))
    with pytest.raises(ValueError, match=r"instance of para_persist\.Compr"):
        register_compressor("x", object())
    with pytest.raises(ValueError, match="should implement the file object interface"):
        register_compressor("x", CompressorWrapper(dict))
    with pytest.raises(ValueError, match="already registered"):
        register_compressor("zlib", para_persist.ZlibCompressorWrapper())
    register_compressor("zlib", para_persist.ZlibCompressorWrapper(), force=True)


def test_third_party_compressor(folder, monkeypatch):
    import gzip

    class GzFile(gzip.GzipFile):
        def __init__(self, fileobj, mode, compresslevel=9):
            super().__init__(fileobj=fileobj, mode=mode, compresslevel=compresslevel)

    class Gz(CompressorWrapper):
        def __init__(self):
            super().__init__(GzFile, prefix=b"\x1f\x8b\x08\x00", extension=".tgz")

    monkeypatch.setitem(para_persist._compressors._COMPRESSORS, "mygz", Gz())
    register_compressor("mygz", Gz(), force=True)
    dump({"a": "b" * 1000}, folder / "x.tgz")
    assert load(folder / "x.tgz") == {"a": "b" * 1000}
    dump([1, 2], folder / "y.pkl", compress=("mygz", 5))
    assert load(folder / "y.pkl") == [1, 2]


@pytest.mark.parametrize(
    "cls", [para_persist.BinaryZlibFile, para_persist.BinaryGzipFile]
)
def test_binary_zlib_file(folder, cls):
    data = bytes(range(256)) * 5000
    with cls(folder / "f", "wb", compresslevel=1) as f:
        assert f.write(data) == len(data)
        assert f.tell() == len(data)
    with cls(folder / "f", "rb") as f:
        assert f.read(10) == data[:10]
        f.seek(1000)
        assert f.read(5) == data[1000:1005]
        f.seek(3)
        assert f.tell() == 3
        assert f.read() == data[3:]
    with pytest.raises(ValueError, match="between 1 and 9"):
        cls(folder / "g", "wb", compresslevel=0)
    with pytest.raises(ValueError, match="Invalid mode"):
        cls(folder / "g", "rw")


def test_zstd_from_file_object_and_truncated(folder):
    pytest.importorskip("zstandard")
    value = {"k": list(range(20000))}
    buf = io.BytesIO()
    dump(value, buf, compress="zstd")
    data = buf.getvalue()
    assert load(io.BytesIO(data)) == value
    for cut in (1, 4, 10, len(data) // 2):
        with pytest.raises(para_persist.CorruptFileError):
            load(io.BytesIO(data[:-cut]))


def test_zstd_file(folder):
    pytest.importorskip("zstandard")
    data = b"abc" * 100000
    with para_persist.ZstdFile(folder / "z", "wb", compresslevel=5) as f:
        f.write(data)
    with para_persist.ZstdFile(folder / "z", "rb") as f:
        assert f.read() == data
    with pytest.raises(ValueError, match="between 1 and 22"):
        para_persist.ZstdFile(folder / "z", "wb", compresslevel=30)


@pytest.mark.parametrize("level", [None, 1, 9])
def test_lz4_frames_have_independent_blocks(tmp_path, level):
    pytest.importorskip("lz4.frame")
    value = [bytes(range(256)) * 4000, "x" * 300_000, list(range(50_000))]
    path = tmp_path / "v.pkl.lz4"
    dump(value, path, compress="lz4" if level is None else ("lz4", level))
    data = path.read_bytes()
    assert data[:4] == b"\x04\x22\x4d\x18"
    assert data[4] & 0x20, "FLG byte: block independence flag not set"
    assert load(path) == value


@pytest.mark.parametrize("size", [100_000, 3_000_000])
def test_zstd_one_shot_frames_record_size_and_load_in_memory(folder, size):
    # 3 MB: one frame per core, compressed by zstandard's threads and read
    # back side by side; both sizes load through the in-memory path, which
    # needs every frame's size in its header.
    zstandard = pytest.importorskip("zstandard")
    from para_persist import _zstdframes

    value = [bytes(range(256)) * (size // 256 // 2), list(range(size // 20))]
    path = folder / "v.pkl.zst"
    dump(value, path)
    data = path.read_bytes()
    with open(path, "rb") as f:
        found = _zstdframes.frames(f, 0, len(data))
    cores = os.cpu_count() or 1
    assert len(found) == (1 if size < 1_000_000 or cores < 2 else cores)
    assert found[-1][1] == len(data)
    whole = (
        zstandard.ZstdDecompressor()
        .stream_reader(io.BytesIO(data), read_across_frames=True)
        .read()
    )
    assert sum(n for _, _, n in found) == len(whole)
    for start, end, _ in found:
        assert zstandard.get_frame_parameters(data[start:end]).has_checksum
    before = threading.active_count()
    assert load(path) == value
    assert load(io.BytesIO(data)) == value  # no descriptor: one frame at a time
    assert load(path, trusted=False) == value  # stream reader, across frames
    (folder / "tail.zst").write_bytes(data + b"trailing bytes")
    for trusted in (True, False):
        with pytest.raises(para_persist.CorruptFileError):
            load(folder / "tail.zst", trusted=trusted)
    # Damage in any frame, or a cut: only the documented error.
    for at in [s + (e - s) // 2 for s, e, _ in found] + [len(data) - 2]:
        bad = bytearray(data)
        bad[at] ^= 0x40
        (folder / "bad.zst").write_bytes(bytes(bad))
        with pytest.raises(para_persist.CorruptFileError):
            load(folder / "bad.zst")
    for cut in (5, len(data) // 3):
        (folder / "cut.zst").write_bytes(data[:-cut])
        with pytest.raises(para_persist.CorruptFileError):
            load(folder / "cut.zst")
    assert threading.active_count() == before


def test_zstd_file_not_written_by_para(folder):
    zstandard = pytest.importorskip("zstandard")
    value = {"plain": [1, 2.5, "three"]}
    path = folder / "other.pkl.zst"
    path.write_bytes(
        zstandard.ZstdCompressor(write_content_size=True).compress(
            pickle.dumps(value, protocol=4)
        )
    )
    assert load(path) == value
    assert load(path, trusted=False) == value


# -- file objects and streams (issue 15) ---------------------------------------
class _ReadOnly:
    """Only ``read``: no peek, seek, tell nor fileno."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n=-1):
        return self._f.read(n)


@pytest.mark.parametrize("compress", [0, 3, ("bz2", 1)])
def test_bytesio_loads_right_after_dump_without_seek(compress):
    value = {"a": [1, 2.5, "x"] * 50, "b": b"\x00" * 300}
    buf = io.BytesIO()
    dump(value, buf, compress=compress)
    assert load(buf) == value  # at the end: read from the start, as joblib


def test_seekable_stream_is_read_from_where_it_stands():
    buf = io.BytesIO()
    buf.write(b"header")
    dump([1, 2], buf)
    buf.seek(len(b"header"))
    assert load(buf) == [1, 2]


@pytest.mark.parametrize("compress", [0, 3])
def test_non_seekable_streams(compress):
    value = {"k": list(range(2000)), "s": "été"}
    buf = io.BytesIO()
    dump(value, buf, compress=compress)
    assert load(_ReadOnly(buf.getvalue())) == value
    rfd, wfd = os.pipe()
    writer = threading.Thread(target=lambda: _write_all(wfd, buf.getvalue()))
    writer.start()
    with os.fdopen(rfd, "rb", buffering=0) as r:  # raw pipe: short reads
        assert load(r) == value
    writer.join()


def _write_all(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as w:
        for i in range(0, len(data), 7):  # in small pieces
            w.write(data[i : i + 7])
            w.flush()


def test_mmap_mode_with_bytesio_warns_as_joblib():
    buf = io.BytesIO()
    dump([1], buf)
    buf.seek(0)
    with pytest.warns(UserWarning, match="In memory persistence is not compatible"):
        assert load(buf, mmap_mode="r") == [1]


def test_python2_str_raises_joblibs_value_error_unless_an_encoding_is_given():
    # A protocol-2 pickle holding a Python 2 str (SHORT_BINSTRING, non-ASCII).
    py2 = b"\x80\x02U\x03\xe9t\xe9q\x00."
    buf = io.BytesIO(py2)
    with pytest.raises(ValueError, match="generated with python 2"):
        load(buf)
    assert load(io.BytesIO(py2), encoding="latin1") == "été"
    with pytest.raises(ValueError, match="encoding must be"):
        load(io.BytesIO(py2), encoding="no-such-codec")
