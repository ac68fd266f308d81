"""Worker-side cache of read-only mappings of para-memmap's own files.

Mapping a file is cheap, but every first touch of a page of a fresh mapping
costs a page fault: for a 500 MB array that is most of the time a task spends
reading it. Tasks of one call, and later calls of one ``with Parallel(...)``
block that reuse the file, share one mapping instead.

Safe because a transported file never changes: new content gets a new file.
Mappings of files that were removed are dropped by a daemon thread within a
second, so that a worker does not pin the memory of a finished session.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["open_read_only", "sweep"]

MAX_ENTRIES = 8
SWEEP_SECONDS = 1.0

_lock = threading.Lock()
_cache: OrderedDict[str, tuple[tuple[int, int, int], np.memmap]] = OrderedDict()
_sweeper_pid = -1


def _identity(filename: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(filename)
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_size


def _drop_removed() -> None:
    # Caller holds _lock.
    for name, (ident, _) in list(_cache.items()):
        if _identity(name) != ident:
            del _cache[name]


def sweep() -> None:
    """Release the mappings of files that were removed (a few stat calls)."""
    if _cache:
        with _lock:
            _drop_removed()


def _sweep_loop() -> None:
    global _sweeper_pid
    while True:
        time.sleep(SWEEP_SECONDS)
        with _lock:
            _drop_removed()
            if not _cache:
                _sweeper_pid = -1
                return


def _start_afresh_in_child() -> None:
    # A forked child (multiprocessing's default workers on Linux) inherits the
    # lock as it was: held, if the parent's sweeper thread had it at that
    # moment, and no sweeper thread would ever release it. Start afresh.
    global _lock, _sweeper_pid
    _lock = threading.Lock()
    _cache.clear()
    _sweeper_pid = -1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh_in_child)


def open_read_only(
    filename: str, dtype: Any, shape: tuple[int, ...], order: str
) -> np.memmap:
    """A read-only ``np.memmap`` of ``filename``, sharing a cached mapping."""
    global _sweeper_pid
    ident = _identity(filename)
    with _lock:
        hit = _cache.get(filename)
        if hit is not None and hit[0] == ident:
            _cache.move_to_end(filename)
            root = hit[1]
        else:
            # A new file usually means the previous call's files are gone:
            # release them before mapping more.
            _drop_removed()
            root = np.memmap(filename, dtype=np.uint8, mode="r")
            _cache[filename] = (ident, root)
            while len(_cache) > MAX_ENTRIES:
                _cache.popitem(last=False)
            if _sweeper_pid != os.getpid():  # none yet, or inherited by fork
                _sweeper_pid = os.getpid()
                threading.Thread(
                    target=_sweep_loop, name="para-memmap-sweeper", daemon=True
                ).start()
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return root[:nbytes].view(dtype).reshape(shape, order=order)
