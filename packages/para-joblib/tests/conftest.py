"""Leak check for the meta-package's tests: nothing started here may remain."""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest


def _ours_in(folder: str) -> set[str]:
    if not os.path.isdir(folder):
        return set()
    pid = os.getpid()
    return {e for e in os.listdir(folder) if f"_{pid}_" in e or f"-{pid}-" in e}


def _workers() -> list[psutil.Process]:
    # Resource trackers and para-memmap's watchdog live as long as this
    # interpreter by design (and exit with it); any other child is a leak.
    left = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" in cmdline or "for line in sys.stdin.buffer" in cmdline:
            continue
        left.append(proc)
    return left


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    before = _ours_in("/dev/shm")
    yield
    # loky's reusable executor keeps idle workers for the next call: stop it,
    # so that any process still alive afterwards is a real leak.
    from loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    if "joblib" in sys.modules:  # joblib's own copy of loky, if it ran
        from joblib.externals.loky import get_reusable_executor as joblib_executor

        joblib_executor().shutdown(wait=True)
    deadline = time.monotonic() + 10
    while _workers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers(), _workers()
    # loky's semaphores and joblib's own folders go at interpreter exit.
    left = {
        e
        for e in _ours_in("/dev/shm") - before
        if not e.startswith(("sem.loky-", "joblib_memmapping_folder_"))
    }
    assert not left, sorted(left)
