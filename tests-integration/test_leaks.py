"""Nothing para starts outlives its use: processes, shared memory, temp folders.

Each scenario runs in a fresh interpreter through para_joblib only. Inside it,
once the work is done and its arrays are dropped (para keeps the shared copy
of an argument array for later calls while the array lives), nothing named
after the process may remain in /dev/shm or the temp folder; after it exits,
no process it started may survive.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import textwrap
import time

import psutil
import pytest
from _leakcheck import SHM, _our_entries

PRELUDE = """
import os, sys, tempfile, time
import numpy as np
import para_joblib as joblib

def ours():
    # loky's reusable executor holds its semaphores (sem.loky-<pid>-*) while
    # it lives; they are checked after the process exits.
    pid = str(os.getpid())
    found = []
    for folder in ("/dev/shm", tempfile.gettempdir()):
        if os.path.isdir(folder):
            found += [os.path.join(folder, e) for e in os.listdir(folder)
                      if (f"_{pid}_" in e or f"-{pid}-" in e)
                      and not e.startswith("sem.loky-")]
    return found

def wait_clean(timeout=5.0):
    deadline = time.monotonic() + timeout
    while ours() and time.monotonic() < deadline:
        time.sleep(0.1)
    return ours()
"""

SCENARIOS = {
    "one-call": """
        data = np.random.default_rng(0).standard_normal(1_000_000)
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(np.sum)(data) for _ in range(4))
        assert len(out) == 4
        del data  # its shared copy, kept for later calls, goes with it
    """,
    "context-block": """
        data = np.ones(500_000)
        with joblib.Parallel(n_jobs=2) as parallel:
            for _ in range(3):
                parallel(joblib.delayed(np.mean)(data) for _ in range(4))
        del data
    """,
    "large-results": """
        def make(i):
            return np.full(400_000, float(i))
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(make)(i) for i in range(4))
        assert [a[0] for a in out] == [0.0, 1.0, 2.0, 3.0]
    """,
    "task-error": """
        def boom(a, i):
            if i == 2:
                raise ValueError("boom")
            return a.sum()
        data = np.ones(400_000)
        try:
            joblib.Parallel(n_jobs=2)(joblib.delayed(boom)(data, i) for i in range(6))
        except ValueError:
            pass
        else:
            raise AssertionError("no error")
        # The failed call keeps no reference to its arguments (nor does its
        # dropped exception): the shared copy of `data` goes with it.
        assert sys.getrefcount(data) == 2, sys.getrefcount(data)
        del data
    """,
    "memory-and-dump": """
        memory = joblib.Memory(os.path.join(sys.argv[1], "cache"), verbose=0)
        f = memory.cache(np.cumsum)
        f(np.arange(10)); f(np.arange(10))
        joblib.dump(np.arange(1000.0), os.path.join(sys.argv[1], "x.pkl"), compress=3)
        memory.clear(warn=False)
    """,
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_nothing_left_after_scenario(tmp_path, scenario):
    script = (
        PRELUDE
        + textwrap.dedent(SCENARIOS[scenario])
        + textwrap.dedent(
            """
        left = wait_clean()
        assert not left, f"left behind while alive: {left}"
        print("clean", os.getpid())
        """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    shell = psutil.Process(proc.pid)
    descendants: set[int] = set()
    try:
        while proc.poll() is None:
            with contextlib.suppress(psutil.Error):
                descendants |= {c.pid for c in shell.children(recursive=True)}
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out + err
    assert f"clean {proc.pid}" in out

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [p for p in descendants if psutil.pid_exists(p) and _zombie_free(p)]
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"processes survived their parent: {alive}"
    pids = {proc.pid} | descendants
    left = _our_entries(SHM, pids, ignore_joblib=False) | _our_entries(
        __import__("pathlib").Path(tempfile.gettempdir()), pids, ignore_joblib=False
    )
    assert not left, f"left behind after exit: {sorted(left)}"


def _zombie_free(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
