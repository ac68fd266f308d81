"""A para_joblib caller killed by SIGKILL in the middle of a call, with large
arrays shared through memmaps: its workers, trackers and watchdogs end and
nothing of it is left in /dev/shm or the temp folder 5 s later.

(joblib 1.6 leaves the workers running until their task and loky's idle
timeout end: not run here, it would leave them behind.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from _leakcheck import SHM, _our_entries

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/dev/shm and /proc: Linux"
)

CALLER = """
import os, sys, time
import numpy as np
import para_joblib as joblib

def mark_then_sleep(a, i, marks):
    with open(os.path.join(marks, f"{{os.getpid()}}-{{i}}"), "w"):
        pass
    time.sleep(30)
    return float(a.sum())

if __name__ == "__main__":
    data = np.ones(1_000_000)  # 8 MB: shared as a memmap of /dev/shm
    joblib.Parallel(n_jobs=2, batch_size=1)(
        joblib.delayed(mark_then_sleep)(data, i, {marks!r}) for i in range(8)
    )
"""

BOUND = 10.0  # far less than the tasks' 30 s


def _ended(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # init reaps it
    except psutil.NoSuchProcess:
        return True


def _held(procs: list[psutil.Process]) -> set[str]:
    paths = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            paths |= {m.path for m in proc.memory_maps(grouped=False)}
    return {p for p in paths if p.startswith("/dev/shm/") and os.path.exists(p)}


def test_a_killed_caller_leaves_nothing(tmp_path):
    marks = tmp_path / "marks"
    temp = tmp_path / "temp"
    marks.mkdir()
    temp.mkdir()
    code = textwrap.dedent(CALLER.format(marks=str(marks)))
    env = {**os.environ, "TMPDIR": str(temp)}
    caller = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(marks)) < 2:
            assert caller.poll() is None, "the caller failed"
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.05)
        started = psutil.Process(caller.pid).children(recursive=True)
        held = _held([psutil.Process(caller.pid), *started])
        assert any("memmap" in p or "para" in p for p in held), held
        caller.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while not all(map(_ended, started)) and time.monotonic() < killed + BOUND:
            time.sleep(0.01)
        seconds = time.monotonic() - killed
        assert [p for p in started if not _ended(p)] == []
    finally:
        if caller.poll() is None:
            caller.kill()
        caller.wait()
    time.sleep(max(0.0, killed + 5 - time.monotonic()))
    pids = {caller.pid} | {p.pid for p in started}
    left = sorted(p for p in held if os.path.exists(p))
    left += sorted(_our_entries(SHM, pids, ignore_joblib=False))
    left += sorted(_our_entries(Path(temp), pids, ignore_joblib=False))
    left += sorted(os.listdir(temp))
    print(f"\npara_joblib: every process gone {seconds:.2f} s after SIGKILL")
    assert left == []
