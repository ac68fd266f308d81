"""Two-thread I/O of one big raw array block in a plain file.

Writing or reading a large array is not bound by copying bytes but by the
kernel: allocating and filling one page-cache page per 4 KiB on write, and
page-faulting the freshly allocated destination on read. Two threads halve
that, if they do not queue on the same lock::

    write_at:  worker thread ── os.pwrite, pieces from the front ──►│◄── caller
               (tmpfs and most file systems serialise write() on the  │
               file's lock, so the caller fills a shared mapping of   │
               the file from the back instead: page faults do not     │
               take that lock)                                        │
    read_at:   worker thread ── os.preadv from the front ──►│◄── os.preadv, caller

Both sides take fixed-size pieces from a shared cursor until they meet, so
the split adapts to whichever side is faster. Mapped pieces are populated
with ``MADV_POPULATE_WRITE`` first: a full disk then shows up as an error of
that call (the piece is written with ``pwrite`` instead, which reports
ENOSPC) rather than as a SIGBUS during the copy. The worker is always joined
before returning or raising; the first error of either side is raised.
"""

from __future__ import annotations

import mmap
import os
import stat
import sys
import threading
from typing import Any

from . import _checksum
from ._errors import CorruptFileError

# Blocks smaller than this are written/read with one plain call.
THREADED_MIN = 64 * 1024**2
# Unit of work taken from the shared cursor; pieces start at multiples of
# it, so that each is one chunk of the block's checksum (see _checksum).
_PIECE = _checksum.CHUNK
# Mapped pages are populated, then filled, and read pieces are read, by this
# much: each step is summed right after its copy, while it is in the core's
# own cache (1 MiB steps cost ~10% more CPU per GB dumped or loaded).
_FILL_STEP = _READ_STEP = 256 * 1024
# pwrite takes a whole piece at once, summed after: while the other thread
# fills the mapping, 256 KiB calls made a 1 GB dump to tmpfs ~30% slower
# than whole-piece ones (measured), far more than summing a piece from
# memory rather than from the cache costs.
_WRITE_STEP = _PIECE
# Linux >= 5.14; the value is fixed by the kernel ABI.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)
_LINUX = sys.platform.startswith("linux")
_pwrite = getattr(os, "pwrite", None)
_preadv = getattr(os, "preadv", None)


def available(reading: bool) -> bool:
    """Whether this platform has the positional calls the threads need."""
    return (_preadv if reading else _pwrite) is not None


class _Cursor:
    """Pieces of ``[0, n)``: the worker takes them from the front, the
    caller from the back; ``stop`` ends both sides after an error."""

    def __init__(self, n: int) -> None:
        self.lock = threading.Lock()
        self.lo, self.hi = 0, n
        self.error: BaseException | None = None

    def front(self) -> tuple[int, int]:
        with self.lock:
            lo = self.lo
            hi = min(lo + _PIECE, self.hi)
            self.lo = hi
        return lo, hi

    def back(self) -> tuple[int, int]:
        with self.lock:
            hi = self.hi
            lo = max((hi - 1) // _PIECE * _PIECE, self.lo)
            self.hi = lo
        return lo, hi

    def stop(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
            self.hi = self.lo


def _run(cursor: _Cursor, worker: Any, caller: Any) -> None:
    """Run ``worker`` in a thread and ``caller`` here; join; raise the error."""

    def guarded() -> None:
        try:
            worker()
        except BaseException as exc:
            cursor.stop(exc)

    thread = threading.Thread(target=guarded, name="para_persist-io", daemon=True)
    thread.start()
    try:
        caller()
    except BaseException as exc:
        cursor.stop(exc)
    finally:
        thread.join()
    if cursor.error is not None:
        raise cursor.error


def _pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    done, n = 0, len(view)
    while done < n:
        done += _pwrite(fd, view[done:], offset + done)  # type: ignore[misc]


def write_at(fd: int, offset: int, data: Any, algo: int) -> list[int]:
    """Write ``data`` (flat uint8 numpy array) at ``offset`` of ``fd``.

    The file is extended to ``offset + data.size``; the file position is
    neither used nor moved. Returns the chunk digests of ``data`` (each side
    sums the pieces it writes, while they are in cache).
    """
    view = memoryview(data).cast("B")
    n = len(view)
    os.ftruncate(fd, offset + n)
    cursor = _Cursor(n)
    sums = [0] * _checksum.count(n)

    def front() -> None:
        while True:
            lo, hi = cursor.front()
            if lo >= hi:
                return
            total = _checksum.Running(algo)
            for a in range(lo, hi, _WRITE_STEP):
                b = min(hi, a + _WRITE_STEP)
                _pwrite_all(fd, view[a:b], offset + a)
                total.update(view[a:b])
            sums[lo // _PIECE] = total.value()

    def back() -> None:
        mapped = _map(fd, offset, n) if _LINUX else None
        try:
            while True:
                lo, hi = cursor.back()
                if lo >= hi:
                    return
                total = _checksum.Running(algo)
                start = lo
                if mapped is not None:
                    done = mapped.fill(data, lo, hi, total.update)
                    if done == hi:
                        sums[start // _PIECE] = total.value()
                        continue
                    # Old kernel, or no space left: plain writes from here
                    # on (they report ENOSPC as an exception, not a signal).
                    mapped.close()
                    mapped, lo = None, done
                for a in range(lo, hi, _WRITE_STEP):
                    b = min(hi, a + _WRITE_STEP)
                    _pwrite_all(fd, view[a:b], offset + a)
                    total.update(view[a:b])
                sums[start // _PIECE] = total.value()
        finally:
            if mapped is not None:
                mapped.close()

    _run(cursor, front, back)
    return sums


class _Mapping:
    """A shared writable mapping of part of a file, seen as uint8."""

    def __init__(self, fd: int, offset: int, n: int) -> None:
        import numpy

        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        self.map = mmap.mmap(fd, offset + n - start, offset=start)
        self.target: Any = numpy.frombuffer(self.map, numpy.uint8)
        self.shift = offset - start

    def fill(self, data: Any, lo: int, hi: int, total: Any) -> int:
        """Copy ``data[lo:hi]`` in, each step summed by ``total`` right after
        (in cache); return where it had to stop (``hi``: done)."""
        shift = self.shift
        for a in range(lo, hi, _FILL_STEP):
            b = min(hi, a + _FILL_STEP)
            page = (shift + a) - (shift + a) % mmap.PAGESIZE
            try:
                self.map.madvise(_MADV_POPULATE_WRITE, page, shift + b - page)
            except OSError:
                return a
            # numpy copies without the GIL, so the writer thread keeps going.
            self.target[shift + a : shift + b] = data[a:b]
            total(data[a:b])
        return hi

    def close(self) -> None:
        self.target = None  # the mapping cannot close while viewed
        self.map.close()


def _map(fd: int, offset: int, n: int) -> _Mapping | None:
    try:
        return _Mapping(fd, offset, n)
    except (OSError, ValueError):  # file system without shared mappings
        return None


def read_at(fd: int, offset: int, out: Any, algo: Any = None, sums: Any = None) -> None:
    """Fill ``out`` (flat uint8 array) with the bytes at ``offset`` of ``fd``.

    With ``algo`` and ``sums`` (the chunk digests of the data, see
    ``_checksum``), each piece is summed in steps right after they are read
    (in cache) and checked.

    Raises
    ------
    CorruptFileError
        If the file ends before ``out`` is full, or a piece does not match
        its digest.
    """
    view = memoryview(out).cast("B")
    cursor = _Cursor(len(view))

    def read(lo: int, hi: int) -> None:
        while lo < hi:
            got = _preadv(fd, [view[lo:hi]], offset + lo)  # type: ignore[misc]
            if not got:
                raise CorruptFileError(
                    f"file truncated: array data needs {len(view)} bytes "
                    f"from offset {offset}"
                )
            lo += got

    def reader(take: Any) -> Any:
        def run() -> None:
            while True:
                lo, hi = take()
                if lo >= hi:
                    return
                if sums is None or algo is None:
                    read(lo, hi)
                    continue
                total = _checksum.Running(algo)
                for a in range(lo, hi, _READ_STEP):
                    b = min(hi, a + _READ_STEP)
                    read(a, b)
                    total.update(view[a:b])
                if total.value() != sums[lo // _PIECE]:
                    raise CorruptFileError(
                        f"checksum mismatch in the array data at offset "
                        f"{offset + lo}: the file is damaged"
                    )

        return run

    _run(cursor, reader(cursor.front), reader(cursor.back))


# -- a big file replaced by dump: its pages freed off the caller's path -------
#
# Dropping the last link to a big file frees its pages there and then (about
# 0.13 s per GB on tmpfs, the same cost joblib pays when it truncates). dump
# keeps the old file open across the rename and closes it in a thread: the
# pages go while the caller goes on. The old content is unreachable by name
# from the rename on, and lived as long already while the new file was
# written, so no more memory is held than before.


def hold_replaced(filename: str) -> int | None:
    """A descriptor of the big regular file about to be replaced, or None."""
    if os.name != "posix":
        return None  # Windows cannot replace a file that is open
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(filename, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # absent, a symbolic link, not readable: nothing to do
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) and st.st_size >= THREADED_MIN:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def release(fd: int | None) -> None:
    """Close ``fd`` (from :func:`hold_replaced`) in a thread of its own."""
    if fd is not None:
        threading.Thread(
            target=os.close, args=(fd,), name="para_persist-release", daemon=True
        ).start()
