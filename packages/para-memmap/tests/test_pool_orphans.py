"""A MemmappingPool's workers end with a caller killed in the middle of a
task, and its shared-memory folder goes too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGKILL: a POSIX check"
)

CALLER = """
import os, sys, time
import numpy as np
from para_memmap import MemmappingPool

def mark_then_sleep(a, marks):
    with open(os.path.join(marks, str(os.getpid())), "w"):
        pass
    time.sleep(30)
    return a.sum()

if __name__ == "__main__":
    data = np.ones(200_000)  # shared through the pool's folder
    with MemmappingPool(2, max_nbytes=1e5) as pool:
        print(pool._temp_folder, flush=True)
        pool.starmap(mark_then_sleep, [(data, {marks!r})] * 4)
"""

# Far less than the tasks' 30 s: only the watch can explain an end this soon.
BOUND = 10.0


def _ended(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # init reaps it
    except psutil.NoSuchProcess:
        return True


def test_workers_and_folder_end_with_a_killed_caller(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    code = textwrap.dedent(CALLER.format(marks=str(marks)))
    caller = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        folder = caller.stdout.readline().strip()
        deadline = time.monotonic() + 120
        while len(os.listdir(marks)) < 2:  # both workers are in a 30 s task
            assert caller.poll() is None, "the caller failed"
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.05)
        workers = [psutil.Process(int(pid)) for pid in os.listdir(marks)]
        assert os.path.isdir(folder)
        caller.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while not all(map(_ended, workers)) and time.monotonic() < killed + BOUND:
            time.sleep(0.01)
        seconds = time.monotonic() - killed
        assert all(map(_ended, workers)), "workers outlived their caller"
    finally:
        if caller.poll() is None:
            caller.kill()
        caller.wait()
        caller.stdout.close()
    while os.path.exists(folder) and time.monotonic() < killed + 5:
        time.sleep(0.05)
    print(f"\nMemmappingPool: workers gone {seconds:.2f} s after SIGKILL")
    assert not os.path.exists(folder)
