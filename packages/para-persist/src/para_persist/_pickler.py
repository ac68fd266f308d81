"""Writing: the C pickler plus a splicer that lays arrays out like joblib.

Data flow of one ``dump``::

    value ──► _ParaPickler (C pickle.Pickler, protocol 5)
                 │ dispatch_table[ndarray] ─► numpy.asanyarray(
                 │        NumpyArrayWrapper(meta), PickleBuffer(array))
                 ▼ write(frame) / write(PickleBuffer)
              _Splicer ──► out (file, or compressor file)
                 └─ arrays >= 64 MiB into dump's own file: _bigio.write_at

The C pickler commits its frame and hands a >= 64 KiB PickleBuffer straight
to ``write`` (small arrays get a shared 64 KiB stand-in buffer so that they
are flushed the same way); the splicer drops the 9-byte BYTEARRAY8/BINBYTES8
header that ended the previous write, and writes instead joblib's block (1
padding-length byte, padding to 16 bytes, the array's own bytes), then ``N``
(push None) so the stack stays as the pickler expects. The result is exactly
joblib's layout: joblib's loader replaces the placeholder by the array after BUILD,
and ``asanyarray(array, None)`` returns it unchanged.

File layout (offsets relative to the start of the stream)::

    HEAD  pickle-with-blocks  STOP  table(n x <offset, length>)  FOOTER

    HEAD  pickle-with-blocks  STOP  table(n x <offset, length>)
          digests(m x <u64>)  FOOTER

``HEAD`` pushes and pops a string (a no-op for any unpickler); ``FOOTER``
holds n, the number of pickle bytes, m, the structure sum, the small
blocks' sum, the checksum algorithm and the magic (see ``_checksum``: the
structure sum covers every byte outside the raw blocks' data, the second
sum the small blocks, and big blocks have one digest per 8 MiB chunk in the
digest list). ``load`` checks the index and the structure sum before
running the C unpickler on the pickle bytes alone, and each big block's
digests as it reads the block; other readers stop at STOP. Files of format 1
(magic ``PARAPRS1``: no digest list, a CRC32 of the pickle bytes and table
only) are still read.
"""

from __future__ import annotations

import copyreg
import pickle
import struct
import sys
from typing import Any

from . import _bigio, _checksum
from ._npwrp import NUMPY_ARRAY_ALIGNMENT_BYTES, SMALL_BLOCK, NumpyArrayWrapper

HEAD = b"X\x0c\x00\x00\x00para_persist0"  # BINUNICODE 'para_persist', POP
# Format 1 (read only): n blocks, pickle bytes, CRC32 of pickle bytes + table.
FOOTER = struct.Struct("<QQI8s")
MAGIC = b"PARAPRS1"
# Format 2: n blocks, pickle bytes, m digests, structure sum, small blocks'
# sum, algorithm (bit 7 set: array data changed through a writable mapping).
FOOTER2 = struct.Struct("<QQQQQB7x8s")
ALGO_AT = FOOTER2.size - 16  # offset of the algorithm byte in the footer
STALE = 0x80
MAGIC2 = b"PARAPRS2"
SEGMENT = struct.Struct("<QQ")
DIGEST = struct.Struct("<Q")

# The C pickler streams in-band buffers of at least its frame size target
# (64 KiB) directly to ``write``; smaller arrays stay in the pickle.
RAW_MIN_BYTES = 64 * 1024
_SLICE = 16 * 1024**2  # piece size of big arrays fed to compressors
# Items per byte-shuffled block; the reader needs one block of scratch space.
SHUFFLE_ITEMS = 1 << 16
# Smaller arrays are not worth the sampling; the sample decides the others.
SHUFFLE_MIN_BYTES = 1024**2
_SHUFFLE_SAMPLE = 64 * 1024

# Same length as b"joblib.numpy_pickle", so renaming keeps every offset.
_OUR_GLOBAL = b"\x8c\x13para_persist._npwrp\x94"
_JOBLIB_GLOBAL = b"\x8c\x13joblib.numpy_pickle\x94"
_HEADERS = pickle.BYTEARRAY8 + pickle.BINBYTES8
_LEN = struct.Struct("<Q")
_PADS = [bytes([n]) + b"\xff" * n for n in range(17)]


class _Splicer:
    """The pickler's file: lays big arrays out raw and keeps the index."""

    def __init__(
        self, out: Any, base: int, slice_writes: bool, big: Any = None
    ) -> None:
        self._write = out.write
        self._big = big  # writes a big raw block with two threads, or None
        self._base = base
        self._slice = slice_writes
        self._pos = 0
        self.algo = _checksum.best()
        self._sum = _checksum.Running(self.algo)
        self._small = _checksum.Running(self.algo)
        self.digests: list[int] = []
        self._held: Any = None
        # (payload the pickler will write, its 8-byte length, what to write
        # instead: bytes for a small array, flat uint8 array for a big one,
        # byte-shuffle item size or 0)
        self.expect: tuple[Any, bytes, Any, int] | None = None
        self.rename = False  # the next frame holds the placeholder's global
        self.segments: list[tuple[int, int]] = []

    def start(self) -> None:
        self._emit(HEAD)

    def write(self, data: Any) -> None:
        expect = self.expect
        if expect is not None and data is expect[0]:
            self._write_block(expect[1], expect[2], expect[3])
            return
        held, self._held = self._held, data
        if held is not None:
            self._emit(held)

    def _emit(self, chunk: Any) -> None:
        if self.rename:
            chunk = bytes(chunk)
            i = chunk.find(_OUR_GLOBAL)
            if i >= 0:
                chunk = chunk[:i] + _JOBLIB_GLOBAL + chunk[i + len(_OUR_GLOBAL) :]
                self.rename = False
        elif type(chunk) is not bytes:
            chunk = memoryview(chunk).cast("B")
        self._sum.update(chunk)
        self._write(chunk)
        self._pos += len(chunk)

    def _write_block(self, header: bytes, data: Any, shuffle: int) -> None:
        self.expect = None
        held, self._held = self._held, None
        if type(held) is not bytes or held[-8:] != header or held[-9] not in _HEADERS:
            raise pickle.PicklingError("para_persist: array header not found")
        if type(data) is bytes and not self.rename:
            # Small array: the frame before it, joblib's padding, its bytes
            # and the None that stands for the payload, in one write.
            body = held[:-9]
            pos = self._pos + len(body)
            pad = NUMPY_ARRAY_ALIGNMENT_BYTES - (self._base + pos + 1) % 16
            nbytes = len(data)
            self.segments.append((pos, 1 + pad + nbytes))
            block = _PADS[pad] + data
            self._sum.update(body)
            if 1 + pad + nbytes <= SMALL_BLOCK:
                self._small.update(block)
            else:
                self._sum.update(_PADS[pad])
                self.digests += _checksum.digests(self.algo, data)
            self._sum.update(b"N")
            self._write(body + block + b"N")
            self._pos = pos + 1 + pad + nbytes + 1
            return
        self._emit(memoryview(held)[:-9])
        # joblib's rule: data starts on the next multiple of 16 after the
        # padding-length byte, with 1 to 16 padding bytes.
        pos = self._pos
        pad = NUMPY_ARRAY_ALIGNMENT_BYTES - (self._base + pos + 1) % 16
        nbytes = len(data) if type(data) is bytes else data.size
        self.segments.append((pos, 1 + pad + nbytes))
        self._pos = pos + 1 + pad + nbytes + 1
        if 1 + pad + nbytes <= SMALL_BLOCK:  # joblib's layout of a small array
            block = _PADS[pad] + bytes(data)
            self._small.update(block)
            self._sum.update(b"N")
            self._write(block + b"N")
            return
        self._sum.update(_PADS[pad])
        self._sum.update(b"N")  # sums in file order: data is summed apart
        self._write(_PADS[pad])
        raw = memoryview(data)
        chunks = _checksum.Chunker(self.algo)
        if shuffle:
            # Byte-shuffle (zstd streams only): byte j of every item goes
            # together, per block, which compresses numeric data better.
            step = SHUFFLE_ITEMS * shuffle
            for i in range(0, nbytes, step):
                piece = data[i : i + step].reshape(-1, shuffle).T.copy()
                chunks.update(piece)
                self._write(piece)
        elif self._slice and nbytes > _SLICE:
            for i in range(0, nbytes, _SLICE):
                chunks.update(raw[i : i + _SLICE])
                self._write(raw[i : i + _SLICE])
        elif self._big is not None and nbytes >= _bigio.THREADED_MIN:
            self.digests += self._big(data, self.algo)
            self._write(b"N")
            return
        else:
            chunks.update(raw)
            self._write(raw)
        self.digests += chunks.finish()
        self._write(b"N")

    def finish(self) -> None:
        if self.expect is not None:
            raise pickle.PicklingError("para_persist: array block never written")
        if self._held is not None:
            self._emit(self._held)
            self._held = None
        struct_len = self._pos - sum(n for _, n in self.segments)
        table = b"".join(SEGMENT.pack(o, n) for o, n in self.segments)
        table += b"".join(DIGEST.pack(d) for d in self.digests)
        self._sum.update(table)
        footer = FOOTER2.pack(
            len(self.segments),
            struct_len,
            len(self.digests),
            self._sum.value(),
            self._small.value(),
            self.algo,
            MAGIC2,
        )
        self._write(table + footer)


_SMALL_HEADER = _LEN.pack(RAW_MIN_BYTES)
_new = object.__new__


class _ParaPickler(pickle.Pickler):
    """C pickler that routes numpy arrays through the splicer.

    Arrays are found through a per-pickler ``dispatch_table`` (exact types),
    so other objects never call back into Python.
    """

    def __init__(self, splicer: _Splicer, protocol: int, shuffle: bool) -> None:
        super().__init__(splicer, protocol=protocol)
        self._shuffle = shuffle
        self._splicer = splicer
        self._proto = protocol
        # numpy cannot hold arrays unless already imported: never import it.
        np = self._np = sys.modules.get("numpy")
        if np is not None:
            table = copyreg.dispatch_table.copy()
            for t in (np.ndarray, np.matrix, np.memmap):
                table[t] = self._reduce_array
            self.dispatch_table = table
        self._standin: bytearray | None = None  # made on the first small array

    def _reduce_array(self, obj: Any) -> Any:
        t = type(obj)
        np = self._np
        if t is np.memmap:
            # Stored as a plain array (the file it maps is not part of it).
            obj = obj.view(np.ndarray)
        dtype = obj.dtype
        if dtype.hasobject or self._proto < 5 or not dtype.itemsize:
            return obj.__reduce_ex__(self._proto)
        order = "F" if obj.flags.fnc else "C"
        w = _new(NumpyArrayWrapper)
        w.__dict__ = {
            "subclass": np.ndarray if t is np.memmap else t,
            "shape": obj.shape,
            "order": order,
            "dtype": dtype,
            "allow_mmap": True,
            "numpy_array_alignment_bytes": NUMPY_ARRAY_ALIGNMENT_BYTES,
        }
        splicer = self._splicer
        if splicer.expect is not None:
            raise pickle.PicklingError("para_persist: unflushed array block")
        if not splicer.segments:
            splicer.rename = True
        if obj.nbytes < RAW_MIN_BYTES:
            # Small arrays: their bytes now ('A': memory order, C for views);
            # a shared 64 KiB stand-in payload makes the pickler flush right
            # after the placeholder, so they too are laid out raw (and can be
            # memory-mapped), as joblib does.
            if self._standin is None:
                self._standin = bytearray(RAW_MIN_BYTES)
            payload = pickle.PickleBuffer(self._standin)
            splicer.expect = (payload, _SMALL_HEADER, obj.tobytes("A"), 0)
            return np.asanyarray, (w, payload)
        # Flat bytes in memory order (a C-order copy if not contiguous); the
        # uint8 view also works for dtypes that export no buffer (datetime64).
        flat = obj.reshape(-1, order="A")
        if not flat.flags.c_contiguous:
            # A strided 1-d view: reshape returned it as it is.
            flat = np.ascontiguousarray(flat)
        data = flat.view(np.uint8)
        shuffle = 0
        if (
            self._shuffle
            and dtype.kind in "iufcmM"
            and dtype.itemsize > 1
            and data.size >= SHUFFLE_MIN_BYTES
            and _shuffle_helps(data, dtype.itemsize)
        ):
            shuffle = dtype.itemsize
            w.para_shuffle = (shuffle, SHUFFLE_ITEMS)  # type: ignore[attr-defined]
        # The payload only makes the C pickler flush right after the
        # placeholder; the splicer writes ``data`` instead.
        payload = pickle.PickleBuffer(data)
        splicer.expect = (payload, _LEN.pack(data.size), data, shuffle)
        return np.asanyarray, (w, payload)


def _shuffle_helps(u8: Any, itemsize: int) -> bool:
    """Compress a sample both ways (zstd level 1) and keep the smaller."""
    import zstandard

    mid = (u8.size // 2) // itemsize * itemsize
    sample = u8[mid : mid + _SHUFFLE_SAMPLE - _SHUFFLE_SAMPLE % itemsize]
    plain = zstandard.ZstdCompressor(level=1).compress(sample.tobytes())
    shuffled = zstandard.ZstdCompressor(level=1).compress(
        sample.reshape(-1, itemsize).T.tobytes()
    )
    return len(shuffled) < 0.95 * len(plain)


def write_stream(
    value: Any,
    out: Any,
    protocol: int,
    base: int,
    sliced: bool,
    shuffle: bool,
    big: Any = None,
) -> None:
    """Pickle ``value`` into the binary file object ``out``.

    ``big(u8)``, if given, writes the bytes of a big array at the position
    of ``out`` and moves past them (see ``_bigio``).
    """
    splicer = _Splicer(out, base, sliced, big)
    splicer.start()
    _ParaPickler(splicer, protocol, shuffle).dump(value)
    splicer.finish()


def wrap_pickle(data: bytes) -> bytes:
    """A whole pickle without arrays laid out as a para file (for tests)."""
    algo = _checksum.best()
    total = _checksum.Running(algo)
    total.update(HEAD + data)
    empty = _checksum.Running(algo).value()
    footer = FOOTER2.pack(
        0, len(HEAD) + len(data), 0, total.value(), empty, algo, MAGIC2
    )
    return HEAD + data + footer
