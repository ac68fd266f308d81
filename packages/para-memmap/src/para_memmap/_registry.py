"""Shared copies of caller arrays, kept across Parallel calls of the process.

An array written once for the workers is not written again while it is
alive and unchanged, in later calls of a ``with Parallel(...)`` block and in
separate calls alike (scikit-learn makes a new Parallel per call)::

    array --(id, layout, data address)--> _Copy: file + how to trust it
      "watch"   Linux 6.7+: its pages are write-protected (see _watch); a
                scan of ~10 us says whether anything wrote them since
      "frozen"  read-only all along its base chain, on a read-only buffer
      "hash"    anything else: its checksum is compared (xxh3 / crc32)

A changed array gets its changed pages written into its file when nobody
reads it, else a new file (a call still running may read the old one). Files
nobody uses are kept within a memory budget, least recently used first out.
Each is a file of its own, ``para-memmap-<pid>-<id>.dat`` in the root folder:
it goes as soon as its array is garbage collected (unless a running call
uses it: then when the call ends), at exit, or with the watchdog if the
process is killed.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any

import numpy as np

from . import _watch
from ._arrays import byte_chunks, byte_span, checksum
from ._storage import SharedFolder, resolve_root

__all__ = ["Copy", "budget", "frozen", "registry"]

BUDGET_ENV = "PARA_MEMMAP_CACHE_BYTES"
# Smaller arrays are checksummed (well under a millisecond): each protected
# range costs the process a split of its memory mappings, which should stay few.
WATCH_MIN_BYTES = 8 * 2**20
_DEFAULT_BUDGET = 2 * 2**30
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def budget(root: str) -> int:
    """Bytes of unused copies kept for later calls under ``root``.

    ``PARA_MEMMAP_CACHE_BYTES`` (``"512M"``, ``"0"``...) when set, else the
    smaller of 2 GiB and a quarter of the folder's filesystem.
    """
    text = os.environ.get(BUDGET_ENV, "").strip().upper()
    if text:
        try:
            if text[-1] in _UNITS:
                return int(float(text[:-1]) * _UNITS[text[-1]])
            return int(float(text))
        except ValueError:
            raise ValueError(
                f"{BUDGET_ENV} should be a number of bytes such as 500000000, "
                f"'512M' or '2G', got {text!r}"
            ) from None
    try:
        st = os.statvfs(root)
        return min(_DEFAULT_BUDGET, st.f_blocks * st.f_frsize // 4)
    except OSError:
        return _DEFAULT_BUDGET


def frozen(a: np.ndarray) -> bool:
    """True if nothing can write ``a``'s memory through Python objects.

    Every array of the base chain must be read-only (a read-only view of a
    writable array can still change) and the buffer at its end, if it is not
    an array, read-only too (``bytes``, a read-only mmap...).
    """
    obj: Any = a
    while isinstance(obj, np.ndarray):
        if obj.flags.writeable:
            return False
        obj = obj.base
    if obj is None:
        return True
    try:
        return memoryview(obj).readonly
    except TypeError:
        return False


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class Copy:
    """One file holding the bytes of one caller array, and how to trust it."""

    __slots__ = (
        "__weakref__",
        "checksum",
        "edges",
        "filename",
        "holders",
        "layout",
        "nbytes",
        "order",
        "pages",
        "ref",
        "retired",
        "root",
        "trust",
    )

    def __init__(self, a: np.ndarray, root: str) -> None:
        self.ref: Any = None
        self.root = root
        self.layout = (a.shape, a.strides, a.dtype, _address(a))
        self.nbytes = a.nbytes
        self.filename = ""
        self.order = "C"
        self.trust = "hash"
        self.checksum: int | None = None
        self.pages = (0, 0)
        self.edges: tuple[int, int, bytes, int, int, bytes] | None = None
        self.holders = 0
        self.retired = False

    # -- how much to trust the array next time ------------------------------

    def arm(self, a: np.ndarray) -> None:
        """Choose the cheapest safe check, then protect/sample the memory.

        Called *before* the bytes are copied, so that a write during or after
        the copy is seen.
        """
        lo, hi = byte_span(a)
        inner_lo = lo + (-lo) % _watch.PAGE
        inner_hi = hi - hi % _watch.PAGE
        if (
            a.nbytes >= WATCH_MIN_BYTES
            and inner_hi > inner_lo
            and _watch.arm(inner_lo, inner_hi)
        ):
            # Pages shared with other objects are compared byte by byte: a
            # neighbour's write must not look like a change of ours.
            head_end = min(inner_lo, hi)
            tail_start = max(inner_hi, head_end)
            self.trust = "watch"
            self.pages = (inner_lo, inner_hi)
            self.edges = (
                lo,
                head_end - lo,
                ctypes.string_at(lo, head_end - lo),
                tail_start,
                hi - tail_start,
                ctypes.string_at(tail_start, hi - tail_start),
            )
        elif frozen(a):
            self.trust = "frozen"
        else:
            self.trust = "hash"

    def patch(self, a: np.ndarray) -> bool:
        """Bring the file up to date by writing only what changed in ``a``.

        For watched contiguous arrays whose file nobody reads now; False when
        the changes cannot all be known (the caller writes a new file).
        """
        if self.trust != "watch" or not (a.flags.c_contiguous or a.flags.f_contiguous):
            return False
        if (a.shape, a.strides, a.dtype, _address(a)) != self.layout:
            return False
        regions = _watch.written_regions(*self.pages)
        if regions is None:
            return False
        head, n_head, b_head, tail, n_tail, b_tail = self.edges  # type: ignore[misc]
        new_head = ctypes.string_at(head, n_head)
        new_tail = ctypes.string_at(tail, n_tail)
        if new_head != b_head:
            regions.append((head, head + n_head))
        if new_tail != b_tail:
            regions.append((tail, tail + n_tail))
        start = _address(a)
        fd = os.open(self.filename, os.O_WRONLY)
        try:
            for lo, hi in regions:
                os.pwrite(fd, ctypes.string_at(lo, hi - lo), lo - start)
        finally:
            os.close(fd)
        self.edges = (head, n_head, new_head, tail, n_tail, new_tail)
        return True

    def unchanged(self, a: np.ndarray) -> bool:
        """Whether ``a`` still holds the bytes of this copy."""
        if (a.shape, a.strides, a.dtype, _address(a)) != self.layout:
            return False
        if self.trust == "watch":
            head, n_head, b_head, tail, n_tail, b_tail = self.edges  # type: ignore[misc]
            return (
                not _watch.written(*self.pages)
                and ctypes.string_at(head, n_head) == b_head
                and ctypes.string_at(tail, n_tail) == b_tail
            )
        if self.trust == "frozen":
            return frozen(a)
        return checksum(a) == self.checksum


class Registry:
    """The process's shared copies, by array identity and root folder."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._copies: OrderedDict[tuple[str, int], Copy] = OrderedDict()
        self._folders: dict[str, SharedFolder] = {}
        self._dead: list[Copy] = []  # filled by weakref callbacks, any thread
        self._files: set[str] = set()  # every file written and not yet removed
        self._pid = os.getpid()
        atexit.register(self._remove_all)

    def _remove_all(self) -> None:
        if os.getpid() == self._pid:
            for filename in list(self._files):
                _unlink(filename)
            self._files.clear()

    def _unlink(self, filename: str) -> None:
        _unlink(filename)
        self._files.discard(filename)

    def _folder(self, root: str, temp_folder: str | None) -> SharedFolder:
        folder = self._folders.get(root)
        if folder is None:
            folder = self._folders[root] = SharedFolder(temp_folder)
        return folder

    def acquire(
        self, a: np.ndarray, temp_folder: str | None, mine: Copy | None = None
    ) -> tuple[Copy, str]:
        """A held copy of ``a``'s current bytes, and what it took.

        "reused" (unchanged), "patched" (only the changed pages were written
        into the file: nobody else was reading it; ``mine`` is a copy the
        caller holds from a call that is over) or "written" (a new file). The
        caller must :meth:`release` it when its workers are done with it.
        """
        root = resolve_root(temp_folder)[0]
        key = (root, id(a))
        with self._lock:
            self._reap()
            copy = self._copies.get(key)
            if copy is not None:
                if copy.ref() is a:
                    if copy.unchanged(a):
                        self._copies.move_to_end(key)
                        copy.holders += 1
                        return copy, "reused"
                    unused = copy.holders - (copy is mine) <= 0
                    if unused and copy.patch(a):
                        self._copies.move_to_end(key)
                        copy.holders += 1
                        return copy, "patched"
                self._retire(key)
            copy = Copy(a, root)
            copy.arm(a)
            order, chunks = byte_chunks(a)
            copy.order = order
            folder = self._folder(root, temp_folder)
            folder.rearm_warning()  # a fallback is worth a warning per copy
            filename, hasher = folder.write_loose(
                chunks, a.nbytes, checksum=copy.trust == "hash"
            )
            self._files.add(filename)
            copy.filename = filename
            if hasher is not None:
                copy.checksum = hasher.intdigest()
            copy.ref = weakref.ref(a, self._died(copy))
            copy.holders = 1
            self._copies[key] = copy
            self._trim()
            return copy, "written"

    def _died(self, copy: Copy) -> Any:
        dead = self._dead
        ref = weakref.ref(copy)

        def callback(_: Any) -> None:
            # May run in any thread, inside any code (the garbage collector):
            # no lock here, only the file goes now if no running call uses it;
            # the bookkeeping waits for the registry's next call.
            c = ref()
            if c is not None:
                dead.append(c)  # list.append: atomic
                if c.holders <= 0:
                    _unlink(c.filename)

        return callback

    def release(self, copy: Copy) -> None:
        """One user less; remove the file if it is retired and unused."""
        with self._lock:
            copy.holders -= 1
            if copy.holders <= 0 and copy.retired:
                self._unlink(copy.filename)
            self._reap()
            self._trim()

    def _retire(self, key: tuple[str, int]) -> None:
        copy = self._copies.pop(key)
        copy.retired = True
        if copy.holders <= 0:
            self._unlink(copy.filename)

    def reap(self) -> None:
        """Remove the unused files of arrays that died."""
        if self._dead:
            with self._lock:
                self._reap()

    def _reap(self) -> None:
        while self._dead:
            copy = self._dead.pop()
            for key, known in list(self._copies.items()):
                if known is copy:
                    self._retire(key)
                    break

    def _trim(self) -> None:
        """Drop unused copies, oldest first, until the budget holds."""
        by_root: dict[str, int] = {}
        for (root, _), copy in self._copies.items():
            by_root[root] = by_root.get(root, 0) + copy.nbytes
        for root, total in by_root.items():
            limit = budget(root)
            if total <= limit:
                continue
            for key, copy in list(self._copies.items()):
                if total <= limit:
                    break
                if key[0] == root and copy.holders <= 0:
                    total -= copy.nbytes
                    self._retire(key)

    def clear(self) -> None:
        """Forget every unused copy now (used copies go when released)."""
        with self._lock:
            self._reap()
            for key, copy in list(self._copies.items()):
                if copy.holders <= 0:
                    self._retire(key)

    def nbytes(self) -> int:
        """Bytes of the copies currently kept (used or not)."""
        with self._lock:
            self._reap()
            return sum(c.nbytes for c in self._copies.values())


def _unlink(filename: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(filename)


_registry: Registry | None = None
_registry_lock = threading.Lock()


def registry() -> Registry:
    """This process's registry (a forked child starts with an empty one)."""
    global _registry
    with _registry_lock:
        if _registry is None or _registry._pid != os.getpid():
            _registry = Registry()
        return _registry
