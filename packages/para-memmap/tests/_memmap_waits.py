"""Polling helper shared by the leak checks (a module of its own: test files must
not import ``conftest``, whose name other suites use too)."""

from __future__ import annotations

import os
import time


def wait_until_gone(paths: set[str], timeout: float = 5.0) -> set[str]:
    """Wait up to ``timeout`` seconds for ``paths`` to disappear; return the rest."""
    deadline = time.monotonic() + timeout
    left = {p for p in paths if os.path.exists(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = {p for p in left if os.path.exists(p)}
    return left
