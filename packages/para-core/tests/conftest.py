"""Shared fixtures: every test leaves no worker process or thread behind."""

from __future__ import annotations

import threading
import time

import psutil
import pytest


def shutdown_loky() -> None:
    from loky import reusable_executor

    # loky keeps one reusable executor per thread.
    executor = reusable_executor._executor_storage.executor
    if executor is not None:
        executor.shutdown(wait=True, kill_workers=True)


def wait_no_children(timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    me = psutil.Process()
    while True:
        alive = []
        for c in me.children(recursive=True):
            try:
                if c.status() == psutil.STATUS_ZOMBIE:
                    continue
                # The resource trackers of loky and multiprocessing are
                # per-interpreter singletons living until exit, not workers.
                if "resource_tracker" in " ".join(c.cmdline()):
                    continue
            except psutil.NoSuchProcess:
                continue
            alive.append(c)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


@pytest.fixture
def no_leftovers():
    """Shut loky's executor down after the test and check nothing is left."""
    threads_before = set(threading.enumerate())
    yield
    shutdown_loky()
    left = wait_no_children()
    assert left == [], [c.cmdline() for c in left]
    deadline = time.monotonic() + 10
    while True:
        extra = [
            t
            for t in set(threading.enumerate()) - threads_before
            if t.is_alive() and not t.daemon
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert extra == []


def pytest_sessionfinish(session, exitstatus):
    shutdown_loky()
    left = wait_no_children()
    if left:  # pragma: no cover - reported, not silently ignored
        print(f"\nERROR: worker processes left behind: {[c.cmdline() for c in left]}")
        session.exitstatus = 1
