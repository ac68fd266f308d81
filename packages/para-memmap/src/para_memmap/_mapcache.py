"""Worker-side cache of shared mappings of the files arrays travel in.

Mapping a file is cheap, but every first touch of a page of a fresh mapping
costs a page fault: for a 500 MB array that is a third of the time a task
spends reading it. Tasks of one call, later calls reusing the file, and
arrays of ``para_memmap.empty`` passed again share one mapping instead.

Safe because the mappings are shared ones (``MAP_SHARED``: "r" and "r+"; the
private "c" mode is never cached): a cached mapping sees exactly what a fresh
one would. A file replaced under the same name is told apart by its inode.
Mappings of files that were removed are dropped by a daemon thread within a
second, so that a worker does not pin the memory of a finished session.

loky restarts a worker whose resident memory grew by more than 300 MB
(``LOKY_MAX_MEMORY_LEAK_SIZE``) since its first task, taking it for a leak;
pages of a shared file mapped here count in that figure although they belong
to the file, not the worker. While this cache holds mappings, the worker's
measurement leaves them out (see :func:`_exclude_from_loky_leak_check`).
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

__all__ = ["open_mapping", "open_read_only", "sweep"]

MAX_ENTRIES = 8
SWEEP_SECONDS = 1.0

_lock = threading.Lock()
# (filename, mode) -> (file identity, root mapping of the whole file)
_cache: OrderedDict[tuple[str, str], tuple[tuple[int, int, int], np.memmap]]
_cache = OrderedDict()
_sweeper_pid = -1
_loky_pid = -1


def _identity(filename: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(filename)
    except OSError:
        return None
    return st.st_ino, st.st_dev, st.st_size


def _drop_removed() -> None:
    # Caller holds _lock.
    for key, (ident, _) in list(_cache.items()):
        if _identity(key[0]) != ident:
            del _cache[key]


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
    global _lock, _sweeper_pid, _loky_pid
    _lock = threading.Lock()
    _cache.clear()
    _sweeper_pid = _loky_pid = -1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_start_afresh_in_child)


def open_mapping(filename: str, mode: str) -> np.memmap | None:
    """The cached ``np.memmap`` (bytes) of the whole of ``filename``.

    ``mode`` is "r" or "r+"; None if the file cannot be mapped (empty).
    """
    global _sweeper_pid
    ident = _identity(filename)
    key = (filename, mode)
    with _lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == ident:
            _cache.move_to_end(key)
            return hit[1]
        if ident is None or ident[2] == 0:
            return None
        # A new file usually means the previous call's files are gone:
        # release them before mapping more.
        _drop_removed()
        root = np.memmap(filename, dtype=np.uint8, mode=mode)
        _cache[key] = (ident, root)
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
        if _sweeper_pid != os.getpid():  # none yet, or inherited by fork
            _sweeper_pid = os.getpid()
            threading.Thread(
                target=_sweep_loop, name="para-memmap-sweeper", daemon=True
            ).start()
        _exclude_from_loky_leak_check()
    return root


def open_read_only(
    filename: str, dtype: Any, shape: tuple[int, ...], order: str
) -> np.memmap:
    """A read-only ``np.memmap`` of ``filename``, sharing a cached mapping."""
    root = open_mapping(filename, "r")
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if root is None:
        return np.memmap(filename, dtype=dtype, mode="r", shape=shape, order=order)
    return root[:nbytes].view(dtype).reshape(shape, order=order)


def _cached_shmem_bytes() -> int:
    """Resident bytes of the cached mappings, bounded by what is resident in
    shared memory at all (``RssShmem``): pages of the files, not the worker's."""
    with _lock:
        mapped = sum(root.nbytes for _, root in _cache.values())
    if not mapped:
        return 0
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"RssShmem:"):
                    return min(mapped, int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _exclude_from_loky_leak_check() -> None:
    """In a loky worker, leave this cache's shared pages out of the leak check.

    loky measures a worker with its module-level ``_get_memory_usage(pid,
    force_gc=False)`` (loky 2.x to 3.x); there is no public way to tell it
    that shared file pages are not the worker's. The wrapper is installed
    once per worker process, only if that function is there with that
    signature; tests check that it still is (a renamed loky function would
    bring back the restarts, never break a task). Caller holds _lock.
    """
    global _loky_pid
    if _loky_pid == os.getpid():
        return
    _loky_pid = os.getpid()
    executor = sys.modules.get("loky.process_executor")
    measure = getattr(executor, "_get_memory_usage", None)
    if measure is None or getattr(measure, "_para_memmap", False):
        return
    try:
        params = list(inspect.signature(measure).parameters)
    except (TypeError, ValueError):
        return
    if params[:2] != ["pid", "force_gc"]:
        return

    def get_memory_usage(pid: int, force_gc: bool = False) -> int:
        usage = measure(pid, force_gc=force_gc)
        if pid == os.getpid():
            usage -= _cached_shmem_bytes()
        return usage

    get_memory_usage._para_memmap = True  # type: ignore[attr-defined]
    executor._get_memory_usage = get_memory_usage  # type: ignore[union-attr]
