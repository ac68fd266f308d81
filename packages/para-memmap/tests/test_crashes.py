"""Nothing of ours survives a killed worker, an interrupted or a killed caller."""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
from _memmap_waits import wait_until_gone

import para_memmap
from para_core import Parallel, delayed

CALLER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import para_memmap
    from para_core import Parallel, delayed

    def slow(a, i):
        time.sleep(60)
        return float(a[i])

    para_memmap.enable()
    data = np.ones(500_000)
    shared = para_memmap.empty(200_000)
    Parallel(n_jobs=2, temp_folder=sys.argv[1] if len(sys.argv) > 1 else None)(
        delayed(slow)(data, i) for i in range(4)
    )
    """
)


def die(a):
    os.kill(os.getpid(), signal.SIGKILL)


def _our_paths(pid):
    roots = ["/dev/shm", "/tmp"]
    found = set()
    for root in roots:
        found.update(glob.glob(os.path.join(root, f"para-memmap-{pid}-*")))
    return found


def _start_caller():
    proc = subprocess.Popen([sys.executable, "-c", CALLER])
    deadline = time.monotonic() + 60
    # Wait until the call is under way: the copy of `data` (a file of its own
    # beside the empty() array) and the workers exist.
    while time.monotonic() < deadline:
        paths = _our_paths(proc.pid)
        if sum(os.path.isfile(p) for p in paths) >= 2:
            workers = psutil.Process(proc.pid).children(recursive=True)
            # Both loky workers must exist, or one started later escapes _reap.
            if sum("LokyProcess" in _cmdline(w) for w in workers) >= 2:
                return proc, paths, workers
        assert proc.poll() is None, "the caller died before its call started"
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the caller never started its call")


def _cmdline(process):
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""


def _is_tracker(process):
    return "resource_tracker" in _cmdline(process)


def _reap(processes):
    # Workers busy in a task outlive a killed caller until the task ends (that
    # is loky's business, not ours): the test kills them so nothing leaks. The
    # resource trackers are spared: they remove the dead caller's semaphores
    # once its workers are gone, and then exit by themselves.
    workers = [p for p in processes if not _is_tracker(p)]
    for p in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(workers, timeout=5)
    psutil.wait_procs([p for p in processes if p not in workers], timeout=10)


def _semaphores_of(pid):
    return set(glob.glob(f"/dev/shm/sem.loky-{pid}-*"))


@pytest.fixture(autouse=True)
def transport():
    para_memmap.enable()
    yield
    para_memmap.disable()


def test_worker_killed_mid_call():
    from loky.process_executor import TerminatedWorkerError

    data = np.ones(300_000)
    with pytest.raises(TerminatedWorkerError):
        Parallel(n_jobs=2)(delayed(die)(data) for _ in range(2))
    # Only the copy of `data` kept for later calls is left, and it goes on
    # request; the call's own folder is gone.
    para_memmap.clear_cache()
    assert not _our_paths(os.getpid())


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"]
)
def test_caller_interrupted_or_killed(sig):
    proc, paths, workers = _start_caller()
    assert any(os.path.isfile(p) for p in paths)  # the empty() array
    workers = list({*workers, *psutil.Process(proc.pid).children(recursive=True)})
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the caller did not exit after {sig!r}")
    try:
        # Files go within 5 s even while the orphaned workers still run.
        left = wait_until_gone(paths | _our_paths(proc.pid))
        assert not left, f"left behind after {sig!r}: {sorted(left)}"
    finally:
        _reap(workers)
    left = wait_until_gone(_semaphores_of(proc.pid), timeout=10)
    assert not left, f"loky semaphores left after {sig!r}: {sorted(left)}"


PREFIX_CALLER = textwrap.dedent(
    """
    import os, sys, time
    from para_memmap import _watchdog

    root, me = sys.argv[1], f"para-memmap-{os.getpid()}-"
    _watchdog.track_prefix(root, me)
    os.makedirs(os.path.join(root, me + "call", "inner"))
    open(os.path.join(root, me + "array.dat"), "wb").close()
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_watchdog_sweeps_the_prefix_of_a_killed_caller_only(tmp_path):
    # Folders of other processes (another pid, another name) stay.
    others = [tmp_path / "para-memmap-1-call", tmp_path / "unrelated"]
    for path in others:
        path.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", PREFIX_CALLER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        watchdog = psutil.Process(proc.pid).children()
        ours = {
            str(tmp_path / f"para-memmap-{proc.pid}-call"),
            str(tmp_path / f"para-memmap-{proc.pid}-array.dat"),
        }
        assert all(os.path.exists(p) for p in ours)
        proc.kill()
        proc.wait(timeout=30)
        assert not wait_until_gone(ours)
        assert all(path.exists() for path in others)
        # Having swept, the watchdog exits.
        _, alive = psutil.wait_procs(watchdog, timeout=10)
        assert not alive
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
