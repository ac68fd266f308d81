"""Writing: the C pickler plus a splicer that lays arrays out like joblib.

Data flow of one ``dump``::

    value ──► _ParaPickler (C pickle.Pickler, protocol 5)
                 │ reducer_override(big ndarray) ─► numpy.asanyarray(
                 │        NumpyArrayWrapper(meta), PickleBuffer(array))
                 ▼ write(frame) / write(PickleBuffer)
              _Splicer ──► out (file, or compressor file)

The C pickler commits its frame and hands a >= 64 KiB PickleBuffer straight
to ``write``; the splicer drops the 9-byte BYTEARRAY8/BINBYTES8 header that
ended the previous write, and writes instead joblib's block (1 padding-length
byte, padding to 16 bytes, the raw array bytes), then ``N`` (push None) so
the stack stays as the pickler expects. The result is exactly joblib's
layout: joblib's loader replaces the placeholder by the array after BUILD,
and ``asanyarray(array, None)`` returns it unchanged.

File layout (offsets relative to the start of the stream)::

    HEAD  pickle-with-blocks  STOP  table(n x <offset, length>)  FOOTER

``HEAD`` pushes and pops a string (a no-op for any unpickler); ``FOOTER``
holds n, the number of pickle bytes, a CRC32 of the pickle bytes and the
table, and a magic. ``load`` checks it before running the C unpickler on the
pickle bytes alone; other readers stop at STOP.
"""

from __future__ import annotations

import pickle
import struct
import sys
import zlib
from typing import Any

from ._npwrp import NUMPY_ARRAY_ALIGNMENT_BYTES, NumpyArrayWrapper

HEAD = b"X\x0c\x00\x00\x00para_persist0"  # BINUNICODE 'para_persist', POP
FOOTER = struct.Struct("<QQI8s")
MAGIC = b"PARAPRS1"
SEGMENT = struct.Struct("<QQ")

# The C pickler streams in-band buffers of at least its frame size target
# (64 KiB) directly to ``write``; smaller arrays stay in the pickle.
RAW_MIN_BYTES = 64 * 1024
_SLICE = 64 * 1024**2
# Items per byte-shuffled block; the reader needs one block of scratch space.
SHUFFLE_ITEMS = 1 << 20
# Smaller arrays are not worth the sampling; the sample decides the others.
SHUFFLE_MIN_BYTES = 1024**2
_SHUFFLE_SAMPLE = 64 * 1024

# Same length as b"joblib.numpy_pickle", so renaming keeps every offset.
_OUR_GLOBAL = b"\x8c\x13para_persist._npwrp\x94"
_JOBLIB_GLOBAL = b"\x8c\x13joblib.numpy_pickle\x94"
_HEADERS = (pickle.BYTEARRAY8, pickle.BINBYTES8)


class _Splicer:
    """The pickler's file: lays big arrays out raw and keeps the index."""

    def __init__(self, out: Any, base: int, slice_writes: bool) -> None:
        self._write = out.write
        self._base = base
        self._slice = slice_writes
        self._pos = 0
        self._crc = 0
        self._held: Any = None
        self._expect: tuple[Any, int, int] | None = None
        self._rename = False
        self.segments: list[tuple[int, int]] = []

    def start(self) -> None:
        self._emit(HEAD)

    def announce(self, pb: pickle.PickleBuffer, nbytes: int, shuffle: int) -> None:
        if self._expect is not None:
            raise pickle.PicklingError("para_persist: unflushed array block")
        self._expect = (pb, nbytes, shuffle)
        if not self.segments:
            self._rename = True

    def write(self, data: Any) -> None:
        expect = self._expect
        if expect is not None and data is expect[0]:
            self._write_block(data, expect[1], expect[2])
            return
        held, self._held = self._held, data
        if held is not None:
            self._emit(held)

    def _emit(self, chunk: Any) -> None:
        if self._rename:
            chunk = bytes(chunk)
            i = chunk.find(_OUR_GLOBAL)
            if i >= 0:
                chunk = chunk[:i] + _JOBLIB_GLOBAL + chunk[i + len(_OUR_GLOBAL) :]
                self._rename = False
        if isinstance(chunk, pickle.PickleBuffer):
            chunk = chunk.raw()
        self._crc = zlib.crc32(chunk, self._crc)
        self._write(chunk)
        self._pos += memoryview(chunk).nbytes

    def _write_block(self, pb: pickle.PickleBuffer, nbytes: int, shuffle: int) -> None:
        self._expect = None
        held, self._held = self._held, None
        header = struct.pack("<Q", nbytes)
        if (
            held is None
            or len(held) < 9
            or held[-8:] != header
            or (held[-9] not in _HEADERS[0] + _HEADERS[1])
        ):
            raise pickle.PicklingError("para_persist: array header not found")
        self._emit(held[:-9])
        # joblib's rule: data starts on the next multiple of 16 after the
        # padding-length byte, with 1 to 16 padding bytes.
        after = self._base + self._pos + 1
        pad = NUMPY_ARRAY_ALIGNMENT_BYTES - after % NUMPY_ARRAY_ALIGNMENT_BYTES
        start = self._pos
        self._write(bytes([pad]) + b"\xff" * pad)
        raw = pb.raw()
        if shuffle:
            # Byte-shuffle (zstd streams only): byte j of every item goes
            # together, per block, which compresses numeric data better.
            u8 = sys.modules["numpy"].frombuffer(raw, dtype="u1")
            step = SHUFFLE_ITEMS * shuffle
            for i in range(0, nbytes, step):
                self._write(u8[i : i + step].reshape(-1, shuffle).T.copy())
        elif self._slice:
            for i in range(0, nbytes, _SLICE):
                self._write(raw[i : i + _SLICE])
        else:
            self._write(raw)
        self._pos += 1 + pad + nbytes
        self.segments.append((start, 1 + pad + nbytes))
        self._emit(b"N")

    def finish(self) -> None:
        if self._expect is not None:
            raise pickle.PicklingError("para_persist: array block never written")
        if self._held is not None:
            self._emit(self._held)
            self._held = None
        struct_len = self._pos - sum(n for _, n in self.segments)
        table = b"".join(SEGMENT.pack(o, n) for o, n in self.segments)
        crc = zlib.crc32(table, self._crc)
        self._write(table + FOOTER.pack(len(self.segments), struct_len, crc, MAGIC))


class _ParaPickler(pickle.Pickler):
    """C pickler that routes big numpy arrays through the splicer."""

    def __init__(self, splicer: _Splicer, protocol: int, shuffle: bool) -> None:
        super().__init__(splicer, protocol=protocol)
        self._shuffle = shuffle
        self._splicer = splicer
        self._proto = protocol
        # numpy cannot hold arrays unless already imported: never import it.
        self._np = sys.modules.get("numpy")

    def reducer_override(self, obj: Any) -> Any:
        np = self._np
        if np is None:
            return NotImplemented
        t = type(obj)
        if t is not np.ndarray and t is not np.matrix and t is not np.memmap:
            return NotImplemented
        if t is np.memmap:
            # Stored as a plain array (the file it maps is not part of it).
            obj = obj.view(np.ndarray)
        if obj.dtype.hasobject or self._proto < 5 or obj.nbytes < RAW_MIN_BYTES:
            return obj.__reduce_ex__(self._proto) if t is np.memmap else NotImplemented
        if obj.flags.c_contiguous:
            order, buf = "C", obj
        elif obj.flags.f_contiguous:
            order, buf = "F", obj
        else:
            order, buf = "C", np.ascontiguousarray(obj)
        wrapper = NumpyArrayWrapper(
            type(obj), obj.shape, order, obj.dtype, allow_mmap=True
        )
        dtype = obj.dtype
        shuffle = 0
        if (
            self._shuffle
            and dtype.kind in "iufcmM"
            and dtype.itemsize > 1
            and obj.nbytes >= SHUFFLE_MIN_BYTES
            and _shuffle_helps(np, pb_bytes(np, buf), dtype.itemsize)
        ):
            shuffle = dtype.itemsize
            wrapper.para_shuffle = (shuffle, SHUFFLE_ITEMS)  # type: ignore[attr-defined]
        try:
            pb = pickle.PickleBuffer(buf)
        except (ValueError, TypeError, BufferError):
            # Some dtypes (datetime64, ...) export no buffer: their bytes do.
            try:
                pb = pickle.PickleBuffer(buf.reshape(-1, order="A").view(np.uint8))
            except (ValueError, TypeError, BufferError):
                return NotImplemented
        self._splicer.announce(pb, obj.nbytes, shuffle)
        return np.asanyarray, (wrapper, pb)


def pb_bytes(np: Any, buf: Any) -> Any:
    """The array's bytes in memory order, as a flat uint8 array (no copy)."""
    return buf.reshape(-1, order="A").view(np.uint8)


def _shuffle_helps(np: Any, u8: Any, itemsize: int) -> bool:
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
    value: Any, out: Any, protocol: int, base: int, sliced: bool, shuffle: bool
) -> None:
    """Pickle ``value`` into the binary file object ``out``."""
    splicer = _Splicer(out, base, sliced)
    splicer.start()
    _ParaPickler(splicer, protocol, shuffle).dump(value)
    splicer.finish()
