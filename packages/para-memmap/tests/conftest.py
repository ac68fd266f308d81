"""Leak checks after every test: no para-memmap file may outlive its test."""

from __future__ import annotations

import os
import tempfile

import pytest
from _memmap_waits import wait_until_gone

PREFIX = "para-memmap-"


def _creator_elsewhere(name: str) -> bool:
    """True for the files of another live process (another test run, say).

    Names carry their creator's pid: ours and those of dead processes (the
    subprocesses of a test) are checked, a live stranger's are not our
    business.
    """
    pid = name[len(PREFIX) :].split("-", 1)[0]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours() -> set[str]:
    found = set()
    for folder in {"/dev/shm", tempfile.gettempdir()}:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found.update(
            os.path.join(folder, n)
            for n in names
            if n.startswith(PREFIX) and not _creator_elsewhere(n)
        )
    return found


@pytest.fixture(autouse=True)
def no_leaked_files():
    import gc

    before = _ours()
    yield
    import para_memmap

    gc.collect()  # arrays from para_memmap.empty release their file when collected
    # Copies kept for later calls (of arrays still alive) go on request.
    para_memmap.clear_cache()
    left = wait_until_gone(_ours() - before)
    assert not left, f"para-memmap files left behind: {sorted(left)}"
