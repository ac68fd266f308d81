"""A caller killed in the middle of a call leaves no worker and no file.

Each test runs ``Parallel(n_jobs=2)`` with 30 s tasks in a fresh interpreter,
kills it with SIGKILL once both workers are inside a task, and checks that
every process it started (workers, resource trackers) is gone long before
the tasks could have ended, and that nothing of it is left in /dev/shm or in
its temp folder 5 s after the kill. The seconds measured are printed (run
with ``-s``); how fast is a figure, not an assertion.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGKILL and /proc: POSIX (Linux) checks"
)

TESTS = os.path.dirname(os.path.abspath(__file__))

CALLER = """
import multiprocessing, sys
sys.path.insert(0, {tests!r})
from _helpers import mark_then_sleep
from para_core import Parallel, delayed, exit_with_caller
if __name__ == "__main__":
    backend = {backend!r}
    if backend == "Pool":  # any pool, given exit_with_caller's initializer
        with multiprocessing.Pool(2, *exit_with_caller()) as pool:
            pool.starmap(mark_then_sleep, [(i, 0, 30, {marks!r}) for i in range(4)])
    if backend.startswith("multiprocessing-"):
        backend = multiprocessing.get_context(backend.split("-")[1])
    tasks = (delayed(mark_then_sleep)(i, {start}, 30, {marks!r}) for i in range(40))
    Parallel(n_jobs=2, backend=backend, batch_size=1)(tasks)
"""

# How long the workers may take to go: far less than the tasks' 30 s (and
# loky's 300 s idle timeout), so that only the watch can explain it.
BOUND = 10.0
SETTLE = 5.0


def _shm_paths_of(procs: list[psutil.Process]) -> set[str]:
    """What these processes map or hold open in /dev/shm or a temp folder."""
    paths = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            for region in proc.memory_maps(grouped=False):
                paths.add(region.path)
        with contextlib.suppress(OSError):
            folder = f"/proc/{proc.pid}/fd"
            for fd in os.listdir(folder):
                with contextlib.suppress(OSError):
                    paths.add(os.readlink(os.path.join(folder, fd)))
    return {
        p.removesuffix(" (deleted)")
        for p in paths
        if p.startswith("/dev/shm/") and not p.endswith(" (deleted)")
    }


def _ended(proc: psutil.Process) -> bool:
    # A zombie has ended: reaping it is its new parent's business (init).
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_ended(procs: list[psutil.Process], since: float) -> float:
    """Seconds from ``since`` until every process of ``procs`` ended (or
    :data:`BOUND` passed)."""
    while not all(map(_ended, procs)) and time.monotonic() < since + BOUND:
        time.sleep(0.01)
    return time.monotonic() - since


def _named_after(pid: int) -> set[str]:
    if not os.path.isdir("/dev/shm"):
        return set()
    return {
        os.path.join("/dev/shm", name)
        for name in os.listdir("/dev/shm")
        if f"-{pid}-" in name or f"_{pid}_" in name
    }


@pytest.mark.parametrize(
    ("backend", "start"),
    [
        ("loky", 0),
        # past the first pre_dispatch batches: loky's workers serve streams
        ("loky", 10),
        ("multiprocessing", 0),
        ("multiprocessing-forkserver", 0),
        ("Pool", 0),
    ],
)
def test_workers_end_with_a_killed_caller(backend, start, tmp_path):
    marks = tmp_path / "marks"
    temp = tmp_path / "temp"
    marks.mkdir()
    temp.mkdir()
    code = textwrap.dedent(
        CALLER.format(tests=TESTS, backend=backend, start=start, marks=str(marks))
    )
    env = {**os.environ, "TMPDIR": str(temp)}
    caller = subprocess.Popen([sys.executable, "-c", code], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(marks)) < 2:  # both workers are in a 30 s task
            assert caller.poll() is None, "the caller failed"
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.05)
        started = psutil.Process(caller.pid).children(recursive=True)
        workers = [
            p
            for p in started
            if p.pid in {int(m.split("-")[0]) for m in os.listdir(marks)}
        ]
        assert len(workers) == 2
        held = _shm_paths_of([psutil.Process(caller.pid), *started])
        held |= _named_after(caller.pid)

        caller.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        workers_gone = _wait_ended(workers, killed)
        alive = [p for p in workers if not _ended(p)]
        assert alive == [], f"workers outlived their caller: {alive}"
        all_gone = _wait_ended(started, killed)
        alive = [p for p in started if not _ended(p)]
        assert alive == [], [p.cmdline() for p in alive]
    finally:
        if caller.poll() is None:
            caller.kill()
        caller.wait()
    time.sleep(max(0.0, killed + SETTLE - time.monotonic()))
    left = sorted(p for p in held if os.path.exists(p))
    left += sorted(os.listdir(temp))
    print(
        f"\n{backend} (tasks from #{start}): workers gone {workers_gone:.2f} s, "
        f"every process {all_gone:.2f} s after SIGKILL; /dev/shm entries it "
        f"held: {len(held)}, left after {SETTLE:.0f} s: {left}"
    )
    assert left == []


def test_exit_with_caller_runs_the_pool_initializer():
    import multiprocessing

    from _helpers import env_var, set_env_var

    from para_core import exit_with_caller

    with pytest.raises(TypeError, match="initializer must be callable"):
        exit_with_caller(3)
    init = exit_with_caller(set_env_var, ("PARA_TEST_LIFELINE", "set"))
    with multiprocessing.Pool(2, *init) as pool:
        assert pool.map(env_var, ["PARA_TEST_LIFELINE"] * 2) == ["set", "set"]
        # the watch runs in each worker: a daemon thread
        names = pool.map(_thread_names, range(2))
    assert all("para-exit-with-caller" in n for n in names)


def _thread_names(_x):
    import threading

    return [t.name for t in threading.enumerate()]
