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

SHM = Path("/dev/shm")


# The pip-installed joblib (differential tests) keeps its executor's
# memmapping folder until the interpreter exits, by design: the session check
# leaves those to joblib, and test_leaks.py checks para in fresh processes.
# Likewise loky's named semaphores (``sem.loky-<pid>-*``) stay until loky's
# resource tracker unlinks them at exit, e.g. after a timeout replaced the
# executor. ``ignore_joblib=False`` (test_leaks.py, after exit) checks both.
_JOBLIB_FOLDER = "joblib_memmapping_folder_"
_LOKY_SEMAPHORE = "sem.loky-"


def _our_entries(folder: Path, pids: set[int], ignore_joblib: bool = True) -> set[str]:
    # Other jobs share /dev/shm and /tmp with us: only entries whose name
    # carries one of our process ids are ours (joblib and para-memmap both
    # name their folders after the creating process).
    if not folder.is_dir():
        return set()
    names = set()
    for entry in folder.iterdir():
        if ignore_joblib and entry.name.startswith((_JOBLIB_FOLDER, _LOKY_SEMAPHORE)):
            continue
        if any(f"_{pid}_" in entry.name or f"-{pid}-" in entry.name for pid in pids):
            names.add(entry.name)
    return names


def _descendants() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


def _is_helper(proc: psutil.Process) -> bool:
    # Resource trackers (multiprocessing's, loky's, joblib's) and
    # para-memmap's watchdog (a ``python -c`` reading its stdin pipe) live for
    # the whole interpreter by design and exit with it: not leaks.
    # test_leaks.py checks that they do exit with their parent.
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return True
    return "resource_tracker" in cmdline or "for line in sys.stdin.buffer" in cmdline


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for proc in procs:
        try:
            out.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
        except psutil.Error:
            out.append(f"{proc.pid}: (gone)")
    return out


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
