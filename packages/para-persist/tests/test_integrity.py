"""Every byte of a para file is checked: flipped bits never change a value."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import pytest

from para_persist import CorruptFileError, _checksum, _pickler, dump, load

np = pytest.importorskip("numpy")


def _value(big_items: int):
    rng = np.random.default_rng(0)
    return {
        "big": rng.random(big_items),  # a big raw block (> 64 KiB)
        "ints": np.arange(20_000, dtype=np.int32),  # 80 KB: big too
        "smalls": [np.arange(i, dtype=np.float32) for i in range(30)],
        "fortran": np.asfortranarray(rng.random((40, 30))),
        "be": np.arange(100, dtype=">i8"),
        "objects": np.array([1, "two", None, (3.0,)], dtype=object),
        "text": "para " * 200,
        "nested": {"a": [1, 2.5, b"bytes"], "t": (None, True)},
    }


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray):
        # load gives arrays in native byte order: compare exact values.
        native = a.dtype.newbyteorder("=")
        return (
            type(a) is type(b)
            and b.dtype.newbyteorder("=") == native
            and a.shape == b.shape
            and (a.astype(b.dtype).tobytes() == b.tobytes() if not a.dtype.hasobject
                 else all(_equal(x, y) for x, y in zip(a.ravel(), b.ravel())))
        )  # fmt: skip
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_equal(x, y) for x, y in zip(a, b))
        )
    return type(a) is type(b) and a == b


# ~0.9 MB (read whole, in memory) and ~1.3 MB (read by the index, big blocks
# read into their arrays): both paths of load.
@pytest.mark.parametrize("big_items", [100_000, 150_000])
def test_one_flipped_bit_at_every_4k_offset_never_changes_a_value(folder, big_items):
    value = _value(big_items)
    path = folder / "v.pkl"
    dump(value, path)
    data = path.read_bytes()
    assert 800_000 < len(data) < 1_400_000
    assert _equal(load(path), value)
    changed, refused, same = [], 0, 0
    for n, offset in enumerate(range(0, len(data), 4096)):
        bad = bytearray(data)
        bad[offset] ^= 1 << (n % 8)
        path.write_bytes(bad)
        # By path (read by the index) and from a file object (as a stream).
        for source, trusted in [(path, True), (path, False), (bad, True)]:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if isinstance(source, bytearray):
                        source = io.BytesIO(source)
                    got = load(source, trusted=trusted)
            except CorruptFileError:
                refused += 1
                continue
            if _equal(got, value):
                same += 1
            else:
                changed.append((offset, type(source).__name__, trusted))
    assert not changed, f"silently changed values at offsets {changed}"
    # Nearly every flip lands in checked bytes; a few may land in joblib's
    # padding or in the HEAD string, which change nothing.
    assert refused > 0.9 * (refused + same)


def test_flipped_bit_in_array_data_names_the_damage(folder):
    dump({"a": np.arange(200_000.0)}, folder / "a.pkl")
    data = bytearray((folder / "a.pkl").read_bytes())
    data[len(data) // 2] ^= 4
    (folder / "a.pkl").write_bytes(data)
    with pytest.raises(CorruptFileError, match="checksum mismatch in the array data"):
        load(folder / "a.pkl")
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        load(folder / "a.pkl", trusted=False)
    # A file object takes the stream reader: the big block is checked too.
    with pytest.raises(CorruptFileError, match="checksum mismatch"):
        load(io.BytesIO(bytes(data)))


def test_mmap_checks_the_structure_not_the_mapped_data(folder):
    dump({"a": np.arange(200_000.0), "s": [1, 2]}, folder / "m.pkl")
    data = bytearray((folder / "m.pkl").read_bytes())
    data[len(data) // 2] ^= 4  # inside the array data
    (folder / "m.pkl").write_bytes(data)
    got = load(folder / "m.pkl", mmap_mode="r")  # not faulted in, not checked
    assert got["s"] == [1, 2]
    del got
    data[len(data) // 2] ^= 4
    data[30] ^= 1  # inside the pickle bytes
    (folder / "m.pkl").write_bytes(data)
    with pytest.raises(CorruptFileError):
        load(folder / "m.pkl", mmap_mode="r")


@pytest.mark.parametrize("mode", ["r+", "w+"])
def test_arrays_changed_through_a_writable_map_still_load(folder, mode):
    value = {"a": np.arange(200_000.0), "small": np.arange(10.0)}
    dump(value, folder / "w.pkl")
    got = load(folder / "w.pkl", mmap_mode=mode)
    got["a"][5] = -1.0
    got["small"][2] = -2.0
    got["a"].flush()
    got["small"].flush()
    del got
    again = load(folder / "w.pkl")
    assert again["a"][5] == -1.0 and again["small"][2] == -2.0
    # The structure is still checked.
    data = bytearray((folder / "w.pkl").read_bytes())
    data[30] ^= 1
    (folder / "w.pkl").write_bytes(data)
    with pytest.raises(CorruptFileError):
        load(folder / "w.pkl")


def _as_format_1(data: bytes) -> bytes:
    """The same file as para-persist 0.1 (format 1) wrote it."""
    f2 = _pickler.FOOTER2
    nseg, struct_len, ndig, *_ = f2.unpack(data[-f2.size :])
    table_start = len(data) - f2.size - ndig * 8 - nseg * 16
    table = data[table_start : table_start + nseg * 16]
    pieces, pos = [], 0
    for off, length in _pickler.SEGMENT.iter_unpack(table):
        pieces.append(data[pos:off])
        pos = off + length
    pieces.append(data[pos:table_start])
    crc = zlib.crc32(table, zlib.crc32(b"".join(pieces)))
    footer = _pickler.FOOTER.pack(nseg, struct_len, crc, _pickler.MAGIC)
    return data[:table_start] + table + footer


@pytest.mark.parametrize("big_items", [1_000, 150_000])
def test_files_of_the_previous_format_still_load(folder, big_items):
    value = _value(big_items)
    dump(value, folder / "v.pkl")
    old = _as_format_1((folder / "v.pkl").read_bytes())
    (folder / "old.pkl").write_bytes(old)
    for trusted in (True, False):
        assert _equal(load(folder / "old.pkl", trusted=trusted), value)
    assert _equal(load(io.BytesIO(old)), value)
    mapped = load(folder / "old.pkl", mmap_mode="r")["big"]
    assert isinstance(mapped, np.memmap)
    assert np.array_equal(mapped, value["big"])
    del mapped
    bad = bytearray(old)
    bad[40] ^= 2  # format 1 checked its pickle bytes already
    (folder / "old.pkl").write_bytes(bad)
    with pytest.raises(CorruptFileError):
        load(folder / "old.pkl")


def _without_isal(monkeypatch):
    monkeypatch.setattr(_checksum, "_fast_crc32", None)
    monkeypatch.setattr(_checksum, "_crc32", zlib.crc32)


def test_crc32_files_load_where_xxhash_is_installed_and_back(folder, monkeypatch):
    value = _value(150_000)
    _without_isal(monkeypatch)
    monkeypatch.setattr(_checksum, "_xxhash", None)  # written with CRC32
    dump(value, folder / "crc.pkl")
    monkeypatch.undo()
    data = (folder / "crc.pkl").read_bytes()
    assert data[-16] == _checksum.CRC32
    assert _equal(load(folder / "crc.pkl"), value)
    if _checksum._xxhash is None:
        return
    _without_isal(monkeypatch)  # xxh3 is the choice when isal is missing
    dump(value, folder / "xxh.pkl")
    monkeypatch.undo()
    assert _equal(load(folder / "xxh.pkl"), value)  # also where isal is
    assert (folder / "xxh.pkl").read_bytes()[-16] == _checksum.XXH3
    monkeypatch.setattr(_checksum, "_xxhash", None)
    monkeypatch.setattr(_checksum, "_warned", False)
    with pytest.warns(UserWarning, match="pip install xxhash"):
        assert _equal(load(folder / "xxh.pkl"), value)


def test_footer_layout():
    # n blocks, pickle bytes, digests, structure sum, small sum, algorithm.
    assert _pickler.FOOTER2.size == 56
    assert _pickler.FOOTER2.unpack(b"\0" * 48 + b"PARAPRS2")[-1] == b"PARAPRS2"
    assert struct.calcsize("<QQQQQB7x") == 48


def test_isal_crc32_files_verify_with_zlib_and_back(folder, monkeypatch):
    # ISA-L's CRC32 is zlib's: files summed by either load, checked, with the
    # other, and a flipped bit in the array data is caught by both.
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    assert _checksum.best() == _checksum.CRC32
    blob = bytes(range(256)) * 4099
    assert isal_zlib.crc32(blob) == zlib.crc32(blob)
    assert isal_zlib.crc32(blob[9:], isal_zlib.crc32(blob[:9])) == zlib.crc32(blob)
    value = _value(150_000)
    dump(value, folder / "isal.pkl")
    _without_isal(monkeypatch)
    monkeypatch.setattr(_checksum, "_xxhash", None)  # zlib's CRC32, not xxh3
    dump(value, folder / "zlib.pkl")
    assert (folder / "isal.pkl").read_bytes() == (folder / "zlib.pkl").read_bytes()
    for reader_has_isal in (False, True):
        assert (_checksum._fast_crc32 is not None) == reader_has_isal
        for name in ("isal.pkl", "zlib.pkl"):
            assert _equal(load(folder / name), value)
            bad = bytearray((folder / name).read_bytes())
            bad[len(bad) // 2] ^= 4  # inside the big array's data
            (folder / "bad.pkl").write_bytes(bad)
            with pytest.raises(CorruptFileError):
                load(folder / "bad.pkl")
        monkeypatch.undo()
