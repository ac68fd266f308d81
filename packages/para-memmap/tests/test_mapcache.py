"""The worker-side cache of read-only mappings."""

from __future__ import annotations

import os
import time

import numpy as np

from para_memmap import _mapcache
from para_memmap._arrays import rebuild_shared


def _write(path, a):
    with open(path, "wb") as f:
        f.write(a.tobytes())


def test_tasks_share_one_mapping_and_see_a_replaced_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_mapcache, "SWEEP_SECONDS", 0.05)
    path = str(tmp_path / "a.dat")
    _write(path, np.arange(100.0))
    a = rebuild_shared(path, np.dtype("f8"), (10, 10), "C", "r")
    b = rebuild_shared(path, np.dtype("f8"), (100,), "C", "r")
    assert isinstance(a, np.memmap) and not a.flags.writeable
    assert np.shares_memory(a, b) and b[-1] == 99.0 and a[9, 9] == 99.0
    f = rebuild_shared(path, np.dtype("f8"), (10, 10), "F", "r")
    assert f[1, 0] == 1.0 and f.flags.f_contiguous
    os.unlink(path)
    _write(path, np.full(100, 7.0))  # same name, new file: never the old bytes
    assert rebuild_shared(path, np.dtype("f8"), (100,), "C", "r")[0] == 7.0
    os.unlink(path)
    deadline = time.monotonic() + 5
    while (path, "r") in _mapcache._cache and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (path, "r") not in _mapcache._cache  # the removed file's memory goes
    del a, b, f


def test_writable_modes_get_their_own_mapping(tmp_path):
    path = str(tmp_path / "w.dat")
    _write(path, np.zeros(10))
    c1 = rebuild_shared(path, np.dtype("f8"), (10,), "C", "c")
    c2 = rebuild_shared(path, np.dtype("f8"), (10,), "C", "c")
    c1[0] = 1.0
    assert c2[0] == 0.0 and (path, "c") not in _mapcache._cache
    shared = rebuild_shared(path, np.dtype("f8"), (10,), "C", "r+")
    shared[1] = 2.0
    assert np.fromfile(path)[1] == 2.0
    del c1, c2, shared


def test_cache_is_bounded(tmp_path):
    for i in range(_mapcache.MAX_ENTRIES + 3):
        path = str(tmp_path / f"{i}.dat")
        _write(path, np.ones(4))
        rebuild_shared(path, np.dtype("f8"), (4,), "C", "r")
    assert len(_mapcache._cache) <= _mapcache.MAX_ENTRIES


def test_cleanup_still_works_without_a_watchdog(tmp_path, monkeypatch):
    import pytest

    from para_memmap import _watchdog
    from para_memmap._session import MemmapSession

    monkeypatch.setattr(_watchdog, "_pipe", None)
    monkeypatch.setattr(_watchdog, "_owner_pid", -2)
    monkeypatch.setattr(_watchdog, "_exiting", False)
    monkeypatch.setattr(_watchdog.sys, "executable", str(tmp_path / "no-python"))
    with pytest.warns(RuntimeWarning, match="watchdog"):
        session = MemmapSession(max_nbytes=10, temp_folder=str(tmp_path))
        folder = session.result_reducer.folder
    assert os.path.isdir(folder)
    session.close()
    assert not os.path.exists(folder)


def test_a_child_forked_while_the_lock_is_held_can_map(tmp_path):
    if not hasattr(os, "fork"):
        return
    path = str(tmp_path / "c.dat")
    _write(path, np.arange(10.0))
    # What the sweeper thread does every second, caught by a fork.
    with _mapcache._lock:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                a = _mapcache.open_read_only(path, np.dtype("f8"), (10,), "C")
                os._exit(0 if a[9] == 9.0 else 1)
            finally:
                os._exit(2)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if not done:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done and os.waitstatus_to_exitcode(status) == 0
