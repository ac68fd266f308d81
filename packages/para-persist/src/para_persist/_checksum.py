"""Checksums of a para file (format 2): every byte is covered.

* The *structure sum* runs over the file in order: the pickle bytes, the
  header (padding) of each big block, the block table and the digest list:
  everything but the raw blocks' data.
* The *small sum* runs over the small raw blocks (<= 64 KiB), in order: the
  reader holds them in memory anyway.
* Each big block's data has one digest per ``CHUNK`` bytes, so that the two
  threads of ``_bigio`` can check the pieces they read (pieces are chunks)
  and a memory-mapped load can skip them without reading them.

Array data may change legitimately: ``load(mmap_mode="r+")`` hands out
writable maps of the file. Such a load marks the file (bit 7 of the
algorithm byte); array data of a marked file is not checked any more, its
structure still is.

The algorithm is CRC32 computed by ISA-L when the ``isal`` package is
installed (the same values as zlib's, several times faster: readable
everywhere), else xxh3-64 when ``xxhash`` is, else zlib's CRC32 (slower, but
in the standard library); the footer records which, so files of either
algorithm load wherever it can be computed. A file summed with xxh3 and read
where xxhash is missing is loaded unchecked, with a warning (see
``missing``). All three release the GIL on big buffers, so the two threads of
``_bigio`` sum at the same time; what costs is reading the bytes, which is why
they are summed in small steps right next to their copy (in cache).
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any

CRC32 = 1
XXH3 = 2
CHUNK = 8 * 1024**2  # = _bigio's piece: the two reading threads check chunks

try:  # optional: a faster sum
    import xxhash as _xxhash
except ImportError:  # pragma: no cover - depends on the environment
    _xxhash = None

try:  # optional: zlib's CRC32, computed with carry-less multiplies (ISA-L)
    from isal.isal_zlib import crc32 as _fast_crc32
except ImportError:  # pragma: no cover - depends on the environment
    _fast_crc32 = None
_crc32 = _fast_crc32 or zlib.crc32

_NAMES = {CRC32: "crc32", XXH3: "xxh3-64"}
_warned = False


def best() -> int:
    """The algorithm a new file is summed with."""
    if _fast_crc32 is not None or _xxhash is None:
        return CRC32
    return XXH3


def usable(algo: int) -> bool:
    """Whether files summed with ``algo`` can be checked here."""
    if algo == CRC32:
        return True
    if algo == XXH3:
        return _xxhash is not None
    return False


def missing(algo: int, name: Any) -> None:
    """Warn (once per process) that a file cannot be checked here."""
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"{name!r} is checksummed with {_NAMES.get(algo, algo)}, which this "
            "Python cannot compute: loaded without checking it for damage. "
            "`pip install xxhash` to check such files.",
            stacklevel=4,
        )


class Running:
    """A sum fed piece by piece (the structure sum)."""

    __slots__ = ("_crc", "_h", "update")

    def __init__(self, algo: int) -> None:
        self._crc = 0
        if algo == XXH3:
            self._h = _xxhash.xxh3_64()
            self.update = self._h.update
        else:
            self._h = None
            self.update = self._update_crc

    def _update_crc(self, data: Any) -> None:
        self._crc = _crc32(data, self._crc)

    def value(self) -> int:
        return self._h.intdigest() if self._h is not None else self._crc


def digest(algo: int, data: Any) -> int:
    """The digest of one chunk (any buffer)."""
    if algo == XXH3:
        return _xxhash.xxh3_64_intdigest(data)
    return _crc32(data)


def count(nbytes: int) -> int:
    """Number of chunk digests of a big block of ``nbytes`` data bytes."""
    return math.ceil(nbytes / CHUNK)


def digests(algo: int, view: Any) -> list[int]:
    """Chunk digests of a whole buffer (a flat uint8 view or bytes)."""
    return [digest(algo, view[i : i + CHUNK]) for i in range(0, len(view), CHUNK)]


class Chunker:
    """Chunk digests of a big block written in pieces of any size."""

    def __init__(self, algo: int) -> None:
        self._algo = algo
        self._part = Running(algo)
        self._filled = 0
        self.out: list[int] = []

    def update(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            take = min(len(view), CHUNK - self._filled)
            if take == CHUNK:  # a whole chunk: one call, no running state
                self.out.append(digest(self._algo, view[:take]))
            else:
                self._part.update(view[:take])
                self._filled += take
                if self._filled == CHUNK:
                    self._flush()
            view = view[take:]

    def _flush(self) -> None:
        self.out.append(self._part.value())
        self._part = Running(self._algo)
        self._filled = 0

    def finish(self) -> list[int]:
        if self._filled:
            self._flush()
        return self.out


def check_block(ctx: Any, off: int, data: Any, lo: int = 0, hi: int = -1) -> None:
    """Check bytes ``[lo, hi)`` (whole chunks) of the big block at ``off``."""
    algo = ctx.algo
    sums = ctx.block_sums.get(off)
    if algo is None or sums is None:
        return  # format 1, or a sum this Python cannot compute
    if hi < 0:
        hi = len(data)
    chunk = CHUNK
    for i in range(lo, hi, chunk):
        if digest(algo, data[i : min(i + chunk, hi)]) != sums[i // chunk]:
            from ._errors import CorruptFileError

            raise CorruptFileError(
                f"checksum mismatch in the array data at offset {off + i}: "
                "the file is damaged"
            )
