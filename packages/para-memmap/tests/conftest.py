"""Leak checks after every test: no para-memmap file may outlive its test."""

from __future__ import annotations

import os
import tempfile
import time

import pytest

PREFIX = "para-memmap-"


def _ours() -> set[str]:
    found = set()
    for folder in {"/dev/shm", tempfile.gettempdir()}:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found.update(os.path.join(folder, n) for n in names if n.startswith(PREFIX))
    return found


def wait_until_gone(paths: set[str], timeout: float = 5.0) -> set[str]:
    """Wait up to ``timeout`` seconds for ``paths`` to disappear; return the rest."""
    deadline = time.monotonic() + timeout
    left = {p for p in paths if os.path.exists(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if os.path.exists(p)}
    return left


@pytest.fixture(autouse=True)
def no_leaked_files():
    import gc

    before = _ours()
    yield
    gc.collect()  # arrays from para_memmap.empty release their file when collected
    left = wait_until_gone(_ours() - before)
    assert not left, f"para-memmap files left behind: {sorted(left)}"
