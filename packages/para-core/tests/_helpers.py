"""Task functions importable by worker processes."""

from __future__ import annotations

import os
import pickle
import signal
import time


def square(x):
    return x * x


def identity(x):
    return x


def add(a, b=0):
    return a + b


class Box:
    """Its bound method ``times`` is a new object at each access."""

    def __init__(self, k):
        self.k = k

    def times(self, x):
        return self.k * x


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"bad value {x}")
    return x


def interrupt_on(x, bad):
    if x == bad:
        raise KeyboardInterrupt(f"interrupted at {x}")
    return x


def sleep_then(x, seconds):
    time.sleep(seconds)
    return x


def getpid(_x=None):
    return os.getpid()


def exit_worker(x, code):
    if x == 1:
        os._exit(code)
    time.sleep(0.05)
    return x


def kill_self(x):
    if x == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.05)
    return x


def env_var(name):
    return os.environ.get(name)


def set_env_var(name, value):
    """A worker initializer: ``os.environ[name] = value``."""
    os.environ[name] = value


def nested_backend_name(_x=None):
    from para_core import Parallel, delayed, get_active_backend

    backend, _ = get_active_backend()
    inner = Parallel(n_jobs=2)(delayed(square)(i) for i in range(3))
    return type(backend).__name__, backend.nesting_level, inner


def nested_explicit_loky(x):
    from para_core import Parallel, delayed

    return Parallel(n_jobs=2, backend="loky")(delayed(square)(x + i) for i in range(2))


class Blob:
    """Holds a buffer and pickles it out of band (protocol 5), like numpy."""

    def __init__(self, data):
        self.data = data

    def __reduce_ex__(self, protocol):
        if protocol < 5:
            return Blob, (bytes(self.data),)
        return Blob, (pickle.PickleBuffer(self.data),)


def blob_info(blob):
    """What a worker sees of a Blob: its bytes and whether it may write them."""
    view = memoryview(blob.data)
    return bytes(view), not view.readonly


def flags_of(a):
    """An array's content, writeability and memory order, seen by a worker."""
    return a.sum(), a.flags.writeable, a.flags.f_contiguous and not a.flags.c_contiguous


def exit_at(x, at, code):
    """Kill the worker (exit code ``code``) at task ``at``."""
    if x == at:
        os._exit(code)
    return x


def sleep_from(x, start, seconds):
    """Return at once below ``start``, then sleep ``seconds`` first."""
    if x >= start:
        time.sleep(seconds)
    return x


def unpicklable_result_at(x, at):
    import threading

    return threading.Lock() if x == at else x


def big_result(x, nbytes):
    return bytes(nbytes)


def hang_from(x, start, blob):
    """Hang (60 s) from task ``start`` on; ``blob`` makes the batch big."""
    if x >= start:
        time.sleep(60)
    return len(blob)


def mark_then_sleep(x, start, seconds, folder):
    """From task ``start`` on: leave a file named after this worker and the
    task in ``folder`` (the task is running), then sleep ``seconds``."""
    if x >= start:
        with open(os.path.join(folder, f"{os.getpid()}-{x}"), "w"):
            pass
        time.sleep(seconds)
    return x


def fail_once_marked(x, folder, seconds):
    """Task 0 raises ValueError once another task left its mark in
    ``folder`` (see mark_then_sleep); the others mark and sleep ``seconds``."""
    if x == 0:
        deadline = time.monotonic() + 60
        while not os.listdir(folder) and time.monotonic() < deadline:
            time.sleep(0.01)
        raise ValueError("bad value 0")
    return mark_then_sleep(x, 1, seconds, folder)


def sleep_or_exit(x, at, seconds):
    """Task ``at`` ends its worker (exit code 3) after a moment; the others
    sleep ``seconds``."""
    if x == at:
        time.sleep(0.5)
        os._exit(3)
    time.sleep(seconds)
    return x


class Payload:
    """An argument whose references a test can count (weakref-able)."""


def fail_with(payload, x, bad):
    if x == bad:
        raise ValueError(f"bad value {x}")
    return x


def _wait_for_file(path):
    while not os.path.exists(path):
        time.sleep(0.01)


def write_result_while_unread(folder, nbytes):
    """Pool task: leave ``folder/started``; once ``folder/reader-gone``
    exists (the pool's result handler has ended), send ``nbytes`` on the
    pool's result pipe under its write lock, as a worker sending a large
    result does, after leaving ``folder/holding``. The send blocks until
    someone reads it; then sleep until stopped."""
    import sys

    with open(os.path.join(folder, "started"), "w"):
        pass
    _wait_for_file(os.path.join(folder, "reader-gone"))
    frame = sys._getframe()
    while "outqueue" not in frame.f_locals:  # multiprocessing.pool.worker's
        frame = frame.f_back
    outqueue = frame.f_locals["outqueue"]
    with outqueue._wlock:
        with open(os.path.join(folder, "holding"), "w"):
            pass
        outqueue._writer.send_bytes(bytes(nbytes))
    time.sleep(3600)
