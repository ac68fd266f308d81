"""The index of a para file: checked, and the pickle bytes gathered, before
any unpickling.

A para file is joblib's layout (pickle with raw array blocks) plus a table of
the blocks, the digests of big blocks and a footer (see ``_pickler``)::

    HEAD  pickle-with-blocks  STOP  table(n x <offset, length>)  digests  FOOTER

``read_index`` checks the footer, the table (blocks in order, inside the
file) and the structure sum (every byte but big blocks' data), then returns
the pickle bytes alone for the C unpickler; small blocks are kept in memory
so that many small arrays cost no system call each. Big blocks are checked
against their digests as they are read (``check_block``), not when mapped.
Format-1 files (a CRC32 of the pickle bytes and table only) are read too.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from . import _checksum
from ._errors import CorruptFileError
from ._npwrp import SMALL_BLOCK
from ._pickler import (
    ALGO_AT,
    DIGEST,
    FOOTER,
    FOOTER2,
    HEAD,
    MAGIC,
    MAGIC2,
    SEGMENT,
    STALE,
)
from ._unpickler import _Ctx

__all__ = [
    "BufferFile",
    "Resumed",
    "SummedStream",
    "mark_writable",
    "read_ahead",
    "read_index",
    "skip_trailer",
]


class _Index:
    """What a footer says, checked against the file size."""

    def __init__(self, tail: Any, size: int, name: Any) -> None:
        magic = bytes(tail[-8:])
        self.small_total = 0
        if magic == MAGIC2 and len(tail) >= FOOTER2.size:
            nseg, struct_len, ndig, total, self.small_total, algo, _ = FOOTER2.unpack(
                tail[-FOOTER2.size :]
            )
            self.v2, footer = True, FOOTER2.size
        elif magic == MAGIC:
            nseg, struct_len, total, _ = FOOTER.unpack(tail[-FOOTER.size :])
            ndig, algo, self.v2, footer = 0, _checksum.CRC32, False, FOOTER.size
        else:
            raise CorruptFileError("para-persist file without its index (truncated?)")
        if nseg > size or ndig > size:
            raise CorruptFileError("damaged para-persist index")
        self.nseg, self.struct_len, self.ndig, self.total = (
            nseg,
            struct_len,
            ndig,
            total,
        )
        self.table_start = size - footer - ndig * DIGEST.size - nseg * SEGMENT.size
        self.table_len = nseg * SEGMENT.size + ndig * DIGEST.size
        if self.table_start < len(HEAD) or struct_len > self.table_start:
            raise CorruptFileError("damaged para-persist index")
        # Array data changed through a writable map: no longer checked.
        self.stale = bool(algo & STALE)
        self.algo_byte = algo
        algo &= ~STALE
        self.algo: int | None = algo
        if not _checksum.usable(algo):
            if algo in (_checksum.CRC32, _checksum.XXH3):
                _checksum.missing(algo, name)
                self.algo = None  # loaded unchecked, with a warning
            else:
                raise CorruptFileError(f"unknown checksum algorithm {algo}")

    def parse(self, table: Any) -> tuple[list[tuple[int, int]], list[int]]:
        n = self.nseg * SEGMENT.size
        segments = list(SEGMENT.iter_unpack(table[:n]))
        digests = list(struct.unpack(f"<{self.ndig}Q", table[n:])) if self.ndig else []
        return segments, digests

    def summer(self) -> Any:
        if self.algo is None:
            return None
        return _checksum.Running(self.algo if self.v2 else _checksum.CRC32)

    def small_summer(self) -> Any:
        if self.algo is None or not self.v2 or self.stale:
            return None
        return _checksum.Running(self.algo)

    def data_algo(self) -> int | None:
        """The algorithm big blocks are checked with (None: not checked)."""
        return None if self.stale or not self.v2 else self.algo

    def verify(self, summer: Any, small: Any) -> None:
        if summer is not None and summer.value() != self.total:
            raise CorruptFileError("checksum mismatch: the file is damaged")
        if small is not None and small.value() != self.small_total:
            raise CorruptFileError(
                "checksum mismatch in the small arrays: the file is damaged"
            )


def _ignore(data: Any) -> None:
    pass


def _check_segments(segments: list, table_start: int, struct_len: int) -> None:
    pos = 0
    for off, length in segments:
        if off < pos or length < 1 or off + length > table_start:
            raise CorruptFileError("damaged para-persist index")
        pos = off + length
    if table_start - sum(n for _, n in segments) != struct_len:
        raise CorruptFileError("damaged para-persist index")


class _Digests:
    """Hands each big block its slice of the digest list, in file order."""

    def __init__(self, digests: list[int], ctx: _Ctx) -> None:
        self._digests = digests
        self._at = 0
        self._ctx = ctx

    def take(self, off: int, header: Any, length: int) -> None:
        if not header or length < 1 + header[0]:
            raise CorruptFileError(f"damaged array block at offset {off}")
        n = _checksum.count(length - 1 - header[0])
        self._ctx.block_sums[off] = self._digests[self._at : self._at + n]
        self._at += n

    def finish(self) -> None:
        if self._at != len(self._digests):
            raise CorruptFileError("damaged para-persist index: digest count")


def read_index(f: Any, size: int, ctx: _Ctx) -> bytearray:
    """Check a para file's index and structure sum; return its pickle bytes.

    Sets ``ctx.segments`` (and ``ctx.block_sums``, the digests of big
    blocks) and keeps the small array blocks in memory (``ctx.small``) so
    that many small arrays cost no system call each.
    """
    if size < len(HEAD) + FOOTER.size:
        raise CorruptFileError(f"file of {size} bytes is too short to be complete")
    held = getattr(f, "buffer", None)
    if held is not None:
        # The whole file is in memory already: no reads, no copies.
        return _read_held(memoryview(held)[:size], ctx)
    tail_len = min(size, FOOTER2.size)
    f.seek(size - tail_len)
    index = _Index(f.read(tail_len), size, ctx.filename)
    table_start = index.table_start
    f.seek(table_start)
    table = f.read(index.table_len)
    segments, digests = index.parse(table)
    _check_segments(segments, table_start, index.struct_len)
    ctx.algo = index.data_algo()
    ctx.index = index
    summer, small_sum = index.summer(), index.small_summer()
    small_len = sum(n for _, n in segments if n <= SMALL_BLOCK)
    if table_start - index.struct_len - small_len <= SMALL_BLOCK and not digests:
        # No big block: one read, then slices in memory.
        _charge(ctx, table_start + index.struct_len)
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
        if summer is not None:
            summer.update(data)
            summer.update(table)
        if small_sum is not None:
            for off, length in segments:
                small_sum.update(view[off : off + length])
        index.verify(summer, small_sum)
        ctx.segments = segments
        ctx.small = (whole, None)  # every block is small: offsets index it
        return data
    _charge(ctx, index.struct_len + small_len)
    data = bytearray(index.struct_len)
    small = bytearray(small_len)
    view, small_view = memoryview(data), memoryview(small)
    at = small_at = pos = 0
    starts: dict[int, int] = {}
    update = summer.update if summer is not None else _ignore
    update_small = small_sum.update if small_sum is not None else _ignore
    v2 = index.v2
    blocks = _Digests(digests, ctx)
    f.seek(0)

    def read(into: memoryview, n: int) -> memoryview:
        if f.readinto(into[:n]) != n:
            raise CorruptFileError("file truncated")
        return into[:n]

    for off, length in segments:
        update(read(view[at:], off - pos))
        at += off - pos
        if length <= SMALL_BLOCK:
            update_small(read(small_view[small_at:], length))
            starts[off] = small_at
            small_at += length
        else:
            if v2:
                header = f.read(1)
                header += f.read(header[0]) if header else b""
                update(header)
                blocks.take(off, header, length)
            f.seek(off + length)
        pos = off + length
    update(read(view[at:], table_start - pos))
    update(table)
    index.verify(summer, small_sum)
    blocks.finish()
    ctx.segments = segments
    ctx.small = (small, starts)
    return data


def _read_held(view: memoryview, ctx: _Ctx) -> bytearray:
    """:func:`read_index` for a file held whole in ``view``: same checks, and
    big blocks checked here (they are in memory already)."""
    size = len(view)
    index = _Index(view[max(0, size - FOOTER2.size) :], size, ctx.filename)
    table_start = index.table_start
    table = view[table_start : table_start + index.table_len]
    segments, digests = index.parse(table)
    summer, small_sum = index.summer(), index.small_summer()
    update = summer.update if summer is not None else _ignore
    update_small = small_sum.update if small_sum is not None else _ignore
    v2 = index.v2
    ctx.algo = index.data_algo()
    ctx.index = index
    blocks = _Digests(digests, ctx)
    # One pass: check the blocks are in order and inside, sum the file in
    # order, and collect the pickle bytes between the blocks.
    pieces: list[memoryview] = []
    append = pieces.append
    pos = total = 0
    for off, length in segments:
        if off < pos or length < 1 or off + length > table_start:
            raise CorruptFileError("damaged para-persist index")
        piece = view[pos:off]
        append(piece)
        update(piece)
        if v2:
            if length <= SMALL_BLOCK:
                update_small(view[off : off + length])
            else:
                header = view[off : off + 1 + view[off]]
                update(header)
                blocks.take(off, header, length)
                _checksum.check_block(ctx, off, view[off + len(header) : off + length])
        pos = off + length
        total += length
    if table_start - total != index.struct_len:
        raise CorruptFileError("damaged para-persist index")
    append(view[pos:table_start])
    update(view[pos:table_start])
    update(table)
    index.verify(summer, small_sum)
    blocks.finish()
    _charge(ctx, index.struct_len)
    data = bytearray().join(pieces)
    ctx.segments = segments
    # Every block is a slice of the held buffer: small ones are copied out
    # by the unpickler, big ones become views of it.
    ctx.small = (view.obj, None)
    return data


def _charge(ctx: _Ctx, n: int) -> None:
    if ctx.budget is not None:
        ctx.budget.take(n, "the pickle stream and small arrays")


def mark_writable(ctx: _Ctx, size: int) -> None:
    """Mark a para file whose arrays are mapped writable (``mmap_mode="r+"``).

    The caller may change the arrays in the file: their sums no longer hold,
    so later loads check only the file's structure (see ``_checksum``).
    """
    index = ctx.index
    if index is None or not index.v2 or index.stale or not ctx.segments:
        return
    fd = os.open(ctx.filename, os.O_WRONLY | getattr(os, "O_BINARY", 0))
    try:
        os.lseek(fd, size - FOOTER2.size + ALGO_AT, os.SEEK_SET)
        os.write(fd, bytes([index.algo_byte | STALE]))
    finally:
        os.close(fd)


class SummedStream:
    """A para stream (file object, compressor) that sums what is read from it.

    The reader says where the bytes go (``sum_into``): the structure sum
    (pickle bytes), the small blocks' sum, or none (a big block's data, which
    is checked against its digests); see ``_checksum``. Sums are computed
    with this Python's best algorithm; a file summed with another one is
    checked for its big blocks only.
    """

    def __init__(self, f: Any) -> None:
        self._f = f
        self.algo = _checksum.best()
        self.structure = _checksum.Running(self.algo)
        self.small = _checksum.Running(self.algo)
        self._to: Any = self.structure.update

    def sum_into(self, where: str | None) -> None:
        self._to = {"structure": self.structure.update, "small": self.small.update}.get(
            where  # type: ignore[arg-type]
        )

    def add(self, data: bytes, small: bool) -> None:
        (self.small if small else self.structure).update(data)

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        if self._to is not None:
            self._to(data)
        return data

    def readline(self, *args: Any) -> bytes:
        data = self._f.readline(*args)
        if self._to is not None:
            self._to(data)
        return data

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        if self._to is not None and n:
            with memoryview(b) as view:
                self._to(view.cast("B")[:n])
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _check_stream_sums(f: Any, tail: bytes, ctx: _Ctx) -> None:
    """Compare a summed para stream's sums with its footer (same algorithm)."""
    nseg, _, ndig, total, small_total, algo, _ = FOOTER2.unpack(tail[-FOOTER2.size :])
    if algo & ~STALE != f.algo:
        return  # summed with an algorithm other than this Python's best
    f.structure.update(tail[: nseg * SEGMENT.size + ndig * DIGEST.size])
    if f.structure.value() != total:
        raise CorruptFileError("checksum mismatch: the stream is damaged")
    if not algo & STALE and f.small.value() != small_total:
        raise CorruptFileError(
            "checksum mismatch in the small arrays: the stream is damaged"
        )


def skip_trailer(f: Any, ctx: _Ctx) -> None:
    """Leave a file object after a para stream's index, as after a pickle."""
    size = ctx.arrays_read * SEGMENT.size + FOOTER.size
    summed = isinstance(f, SummedStream)
    if summed:
        f.sum_into(None)
    tail = f.read(size)
    if len(tail) == size and tail.endswith(MAGIC):
        return  # format 1
    more = ctx.stream_digests * DIGEST.size + FOOTER2.size - FOOTER.size
    tail += f.read(more)
    if len(tail) != size + more or not tail.endswith(MAGIC2):
        raise CorruptFileError("para-persist stream without its index")
    if summed:
        _check_stream_sums(f, tail, ctx)
    # The big blocks read are checked against their digests.
    *_, ndig, _, _, algo, _ = FOOTER2.unpack(tail[-FOOTER2.size :])
    at = ctx.arrays_read * SEGMENT.size
    digests = struct.unpack(f"<{ndig}Q", tail[at : at + ndig * DIGEST.size])
    if algo & STALE or not _checksum.usable(algo):
        return
    at = 0
    for u8, n in ctx.stream_blocks:
        if u8 is not None and _checksum.digests(algo, u8) != list(digests[at : at + n]):
            raise CorruptFileError(
                "checksum mismatch in the array data: the stream is damaged"
            )
        at += n


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


def read_ahead(f: Any, limit: int) -> tuple[bytearray, bool]:
    """Stream ``f`` (a decompressor) read whole if it holds at most ``limit``
    bytes (then True), else its first ``limit + 1`` bytes (then False).

    Read in pieces (decompressors allocate what they are asked for, and
    most streams are far smaller than ``limit``) into one buffer that grows
    in place: no second copy of the whole.
    """
    buf = bytearray()
    while len(buf) <= limit:
        piece = f.read(min(_AHEAD_PIECE, limit + 1 - len(buf)))
        if not piece:
            return buf, True
        buf += piece
    return buf, False


_AHEAD_PIECE = 1024**2


class Resumed:
    """A stream whose first bytes were read ahead (``read_ahead``): those
    bytes, then the rest of the stream."""

    def __init__(self, head: bytearray, rest: Any) -> None:
        self._buf = head
        self._head = memoryview(head)
        self._at = 0
        self._rest = rest

    def _take(self, n: int) -> memoryview:
        out = self._head[self._at : self._at + n]
        self._at += len(out)
        return out

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return bytes(self._take(len(self._head))) + self._rest.read()
        out = bytes(self._take(n))
        while len(out) < n:
            more = self._rest.read(n - len(out))
            if not more:
                break
            out += more
        return out

    def readinto(self, b: Any) -> int:
        with memoryview(b) as view, view.cast("B") as target:
            got = len(target)
            head = self._take(got)
            target[: len(head)] = head
            if len(head) < got:
                return len(head) + (self._rest.readinto(target[len(head) :]) or 0)
            return got

    def readline(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = 1 << 62
        end = self._buf.find(b"\n", self._at, self._at + size)
        if end >= 0:
            return bytes(self._take(end + 1 - self._at))
        out = bytes(self._take(size))
        if len(out) < size:
            out += self._rest.readline(size - len(out))
        return out

    def peek(self, n: int = 0) -> bytes:
        if self._at < len(self._head):
            return bytes(self._head[self._at : self._at + max(n, 1)])
        return self._rest.peek(n)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._at + self._rest.tell() - len(self._head)
