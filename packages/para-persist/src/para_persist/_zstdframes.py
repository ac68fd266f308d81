"""zstd streams of moderate size as a few frames: compressed and read in parallel.

A zstd frame is decompressed by one thread, start to end. ``dump`` writes a
moderate stream (2 to 32 MiB, see ``ZstdFile``) as one frame per core,
compressed by zstandard's own threads; each frame records its size. ``load``
walks the frames, then decompresses them side by side straight into one
buffer (zstandard releases the GIL while it works)::

    dump:  pickle bytes ─► split in n parts ─► multi_compress_to_buffer
                                   (n frames, zstandard's threads) ─► file
    load:  file ─► frames() ─► [(start, end, size), ...]
               ─► decompress_into(): worker thread + caller, each frame
                  read with os.pread into its slice of one bytearray

Concatenated frames are a valid zstd stream: any zstd reader gets the same
bytes, and :class:`ZstdFile` reads across frames.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ._bigio import _Cursor, _run
from ._errors import CorruptFileError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_SIZE = 4 * 1024**2  # compressed bytes read at once per frame
_pread = getattr(os, "pread", None)


def frame_end(f: Any, start: int = 0) -> int:
    """Offset just past the zstd frame at ``start`` of seekable ``f``, or -1.

    zstandard's stream reader ends quietly on a truncated frame, so ``load``
    walks the block headers (a few bytes per 128 KiB block) to find out.
    """
    f.seek(start)
    head = f.read(18)
    if len(head) < 6 or not head.startswith(ZSTD_MAGIC):
        return -1
    fhd = head[4]
    single = (fhd >> 5) & 1
    fcs = (0, 2, 4, 8)[fhd >> 6] or single
    pos = start + 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
    while True:
        f.seek(pos)
        block = f.read(3)
        if len(block) < 3:
            return -1
        value = int.from_bytes(block, "little")
        kind, size = (value >> 1) & 3, value >> 3
        if kind == 3:
            return -1
        pos += 3 + (1 if kind == 1 else size)
        if value & 1:
            return pos + (4 if (fhd >> 2) & 1 else 0)


def frames(f: Any, start: int, file_end: int) -> list[tuple[int, int, int]]:
    """``(start, end, content size or -1)`` of the frames from ``start`` on.

    Raises
    ------
    CorruptFileError
        If a frame is truncated or its block headers are damaged, or if
        bytes that are not a frame follow them (zstd readers refuse those
        too).
    """
    import zstandard

    out = []
    pos = start
    while pos < file_end:
        f.seek(pos)
        head = f.read(18)
        if out and not head.startswith(ZSTD_MAGIC):
            raise CorruptFileError(f"data that is not zstd after offset {pos}")
        end = frame_end(f, pos)
        if end < 0 or end > file_end:
            raise CorruptFileError("truncated or damaged zstd frame")
        try:
            size = zstandard.frame_content_size(head)
        except zstandard.ZstdError:
            size = -1
        out.append((pos, end, size))
        pos = end
    return out


class _Source:
    """The compressed bytes of one frame, as a file zstandard reads from."""

    def __init__(self, read_at: Any, start: int, end: int) -> None:
        self._read_at = read_at
        self._pos = start
        self._end = end

    def read(self, n: int = -1) -> bytes:
        n = self._end - self._pos if n < 0 else min(n, self._end - self._pos)
        if n <= 0:
            return b""
        data = self._read_at(n, self._pos)
        self._pos += len(data)
        return data


def _decompress_frame(source: _Source, out: memoryview) -> None:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(source, read_size=_READ_SIZE)
    got, size = 0, len(out)
    while got < size:
        n = reader.readinto(out[got:])
        if not n:
            raise CorruptFileError("compressed stream shorter than announced")
        got += n
    if reader.read(1):  # also reads and checks the frame's checksum
        raise CorruptFileError("compressed stream longer than announced")


def decompress_into(f: Any, found: list[tuple[int, int, int]]) -> bytearray:
    """Decompress frames of known sizes into one new bytearray.

    With several frames and a file descriptor, a worker thread and the
    caller take frames in turn; each frame's checksum is verified. Only
    4 MiB of compressed data per thread is in memory at a time.
    """
    buf = bytearray(sum(size for _, _, size in found))
    view = memoryview(buf)
    jobs, pos = [], 0
    for start, end, size in found:
        jobs.append((start, end, view[pos : pos + size]))
        pos += size
    fd = None
    if len(jobs) > 1 and _pread is not None:
        try:
            fd = f.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
    if fd is None:

        def read_at(n: int, at: int) -> bytes:
            f.seek(at)
            return f.read(n)

        for start, end, out in jobs:
            _decompress_frame(_Source(read_at, start, end), out)
        return buf

    def pread(n: int, at: int) -> bytes:
        return _pread(fd, n, at)  # type: ignore[misc]

    todo = iter(jobs)
    lock = threading.Lock()
    cursor = _Cursor(0)

    def work() -> None:
        while cursor.error is None:
            with lock:
                job = next(todo, None)
            if job is None:
                return
            start, end, out = job
            _decompress_frame(_Source(pread, start, end), out)

    _run(cursor, work, work)
    return buf


def compress_frames(zstd: Any, level: int, data: Any, parts: int) -> list[Any]:
    """``data`` as ``parts`` zstd frames compressed on zstandard's threads:
    the frames, in order, as buffers to write out.

    Falls back to one frame on zstd's worker threads when this zstandard
    build has no ``multi_compress_to_buffer`` (its CFFI backend).
    """
    compressor = zstd.ZstdCompressor(level=level, write_checksum=True)
    multi = getattr(compressor, "multi_compress_to_buffer", None)
    step = -(-len(data) // parts)
    if multi is None:
        params = zstd.ZstdCompressionParameters.from_level(
            level, threads=parts, job_size=max(step, 1024**2), write_checksum=True
        )
        return [zstd.ZstdCompressor(compression_params=params).compress(data)]
    with memoryview(data) as view:
        pieces = [view[i : i + step] for i in range(0, len(view), step)]
        found = multi(pieces, threads=parts)
        del pieces
    return [found[i] for i in range(len(found))]
