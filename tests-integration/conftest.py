"""Shared fixtures of the integration suite: leak checks and scratch folders.

Every test here goes through ``para_joblib`` (and, for differential tests,
the pip-installed joblib). After the session, nothing we started may remain:
no worker process, no shared-memory or temp-folder entry named after us.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from _leakcheck import SHM, _descendants, _describe, _is_helper, _our_entries


def _shutdown_executors() -> None:
    # Reusable executors keep idle workers for reuse across calls: stop them
    # so that what remains afterwards is a real leak.
    try:
        from loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    except Exception:
        pass
    try:
        from joblib.externals.loky import get_reusable_executor as joblib_executor

        joblib_executor().shutdown(wait=True)
    except Exception:
        pass


@pytest.fixture(scope="session", autouse=True)
def no_leaks_after_session():
    before_shm = set(os.listdir(SHM)) if SHM.is_dir() else set()
    before_tmp = set(os.listdir(tempfile.gettempdir()))
    yield
    _shutdown_executors()
    deadline = time.monotonic() + 10
    while True:
        alive = [p for p in _descendants() if not _is_helper(p)]
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    pids = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    shm_left = _our_entries(SHM, pids) - before_shm
    tmp_left = _our_entries(Path(tempfile.gettempdir()), pids) - before_tmp
    assert not alive, f"worker processes left behind: {_describe(alive)}"
    assert not shm_left, f"/dev/shm entries left behind: {sorted(shm_left)}"
    assert not tmp_left, f"temp entries left behind: {sorted(tmp_left)}"


@pytest.fixture
def shm_snapshot():
    """A function returning /dev/shm entries created since the test started."""
    before = set(os.listdir(SHM)) if SHM.is_dir() else set()

    def new_entries() -> set[str]:
        pids = {os.getpid()} | {p.pid for p in _descendants()}
        # The reusable executor's semaphores live as long as its workers,
        # beyond one test: the session check looks at them after shutdown.
        return {
            name
            for name in _our_entries(SHM, pids) - before
            if not name.startswith("sem.loky-")
        }

    return new_entries


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run the test inside its own temporary folder."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
