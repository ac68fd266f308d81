"""The index of a para file: checked, and the pickle bytes gathered, before
any unpickling.

A para file is joblib's layout (pickle with raw array blocks) plus a table of
the blocks and a footer (see ``_pickler``)::

    HEAD  pickle-with-blocks  STOP  table(n x <offset, length>)  FOOTER

``read_index`` checks the footer, the table (blocks in order, inside the
file) and the CRC32 of the pickle bytes and table, then returns the pickle
bytes alone for the C unpickler; small blocks are kept in memory so that many
small arrays cost no system call each.
"""

from __future__ import annotations

import zlib
from typing import Any

from ._errors import CorruptFileError
from ._npwrp import SMALL_BLOCK
from ._pickler import FOOTER, HEAD, MAGIC, SEGMENT
from ._unpickler import _Ctx

__all__ = ["BufferFile", "read_index", "skip_trailer"]


def read_index(f: Any, size: int, ctx: _Ctx) -> bytearray:
    """Check a para file's index and CRC; return its pickle bytes.

    Sets ``ctx.segments`` and keeps the small array blocks in memory
    (``ctx.small``) so that many small arrays cost no system call each.
    """
    if size < len(HEAD) + FOOTER.size:
        raise CorruptFileError(f"file of {size} bytes is too short to be complete")
    held = getattr(f, "buffer", None)
    if held is not None:
        # The whole file is in memory already: no reads, no copies.
        return _read_held(memoryview(held)[:size], ctx)
    f.seek(size - FOOTER.size)
    nseg, struct_len, crc, magic = FOOTER.unpack(f.read(FOOTER.size))
    if magic != MAGIC:
        raise CorruptFileError("para-persist file without its index (truncated?)")
    table_start = size - FOOTER.size - nseg * SEGMENT.size
    if nseg > size or table_start < len(HEAD) or struct_len > table_start:
        raise CorruptFileError("damaged para-persist index")
    f.seek(table_start)
    table = f.read(nseg * SEGMENT.size)
    segments = list(SEGMENT.iter_unpack(table))
    pos, small_len = 0, 0
    for off, length in segments:
        if off < pos or length < 1 or off + length > table_start:
            raise CorruptFileError("damaged para-persist index")
        if length <= SMALL_BLOCK:
            small_len += length
        pos = off + length
    if table_start - sum(n for _, n in segments) != struct_len:
        raise CorruptFileError("damaged para-persist index")
    if table_start - struct_len - small_len <= SMALL_BLOCK:
        # No big block: one read, then slices in memory.
        whole = bytearray(table_start)
        f.seek(0)
        if f.readinto(whole) != table_start:
            raise CorruptFileError("file truncated")
        view, pieces, pos = memoryview(whole), [], 0
        for off, length in segments:
            pieces.append(view[pos:off])
            pos = off + length
        pieces.append(view[pos:])
        data = bytearray().join(pieces)
        if zlib.crc32(table, zlib.crc32(data)) != crc:
            raise CorruptFileError("checksum mismatch: the file is damaged")
        ctx.segments = segments
        ctx.small = (whole, None)  # every block is small: offsets index it
        return data
    data = bytearray(struct_len)
    small = bytearray(small_len)
    view, small_view = memoryview(data), memoryview(small)
    at = small_at = pos = 0
    starts: dict[int, int] = {}
    f.seek(0)

    def read(into: memoryview, n: int) -> None:
        if f.readinto(into[:n]) != n:
            raise CorruptFileError("file truncated")

    for off, length in segments:
        read(view[at:], off - pos)
        at += off - pos
        if length <= SMALL_BLOCK:
            read(small_view[small_at:], length)
            starts[off] = small_at
            small_at += length
        else:
            f.seek(off + length)
        pos = off + length
    read(view[at:], table_start - pos)
    if zlib.crc32(table, zlib.crc32(data)) != crc:
        raise CorruptFileError("checksum mismatch: the file is damaged")
    ctx.segments = segments
    ctx.small = (small, starts)
    return data


def _read_held(view: memoryview, ctx: _Ctx) -> bytearray:
    """:func:`read_index` for a file held whole in ``view``: same checks."""
    size = len(view)
    nseg, struct_len, crc, magic = FOOTER.unpack_from(view, size - FOOTER.size)
    if magic != MAGIC:
        raise CorruptFileError("para-persist file without its index (truncated?)")
    table_start = size - FOOTER.size - nseg * SEGMENT.size
    if nseg > size or table_start < len(HEAD) or struct_len > table_start:
        raise CorruptFileError("damaged para-persist index")
    table = view[table_start : size - FOOTER.size]
    segments = list(SEGMENT.iter_unpack(table))
    # One pass: check the blocks are in order and inside, and collect the
    # pickle bytes between them.
    pieces: list[memoryview] = []
    append = pieces.append
    pos = total = 0
    for off, length in segments:
        if off < pos or length < 1:
            raise CorruptFileError("damaged para-persist index")
        append(view[pos:off])
        pos = off + length
        total += length
    if pos > table_start or table_start - total != struct_len:
        raise CorruptFileError("damaged para-persist index")
    append(view[pos:table_start])
    data = bytearray().join(pieces)
    if zlib.crc32(table, zlib.crc32(data)) != crc:
        raise CorruptFileError("checksum mismatch: the file is damaged")
    ctx.segments = segments
    # Every block is a slice of the held buffer: small ones are copied out
    # by the unpickler, big ones become views of it.
    ctx.small = (view.obj, None)
    return data


def skip_trailer(f: Any, ctx: _Ctx) -> None:
    """Leave a file object after a para stream's index, as after a pickle."""
    size = ctx.arrays_read * SEGMENT.size + FOOTER.size
    tail = f.read(size)
    if len(tail) != size or not tail.endswith(MAGIC):
        raise CorruptFileError("para-persist stream without its index")


class BufferFile:
    """Read-only file over a bytearray, for the in-memory fast path."""

    def __init__(self, buf: bytearray) -> None:
        self.buffer = buf
        self._view = memoryview(buf)
        self._pos = 0

    def seek(self, pos: int) -> int:
        self._pos = pos
        return pos

    def read(self, n: int) -> bytes:
        out = bytes(self._view[self._pos : self._pos + n])
        self._pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        chunk = self._view[self._pos : self._pos + len(b)]
        b[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)
