"""para-memmap vs joblib's memmapping: fan-out, reuse, shared arrays, results.

Run ``python bench_memmap.py [--quick] [--json PATH]``. Every workload runs
para (para_core.Parallel with para_memmap enabled) and joblib in the same run,
on the same inputs, with n_jobs=2; their samples alternate (para, joblib,
joblib, para, ...) so that load from other processes hits both alike. It
prints both times (median of the repeats), the speed-up (joblib / para) and
the target (issues 5 and 17)::

    first call, never-seen array   a FRESH array each repeat: the copy is paid
    later calls in a with-block    one element changed in place before each
                                   call: para sees it, joblib (identity) not
    separate calls, same array     a new Parallel each call (scikit-learn's
                                   way), the array unchanged
    para_memmap.empty array        separate calls, against joblib's reuse
                                   (later calls of its with-block)
    8 tasks returning 50 MB        alone, then in the mixed sequence: one
                                   with-block, a 500 MB fan-out, then the
                                   returns (worker restarts are counted)

Peak memory is measured in three extra runs, never mixed with timed ones: the
growth, over the value just before the run, of the anonymous memory of the
caller and all its child processes, plus the temporary files (ours, joblib's)
in /dev/shm, plus mapped /dev/shm files already unlinked, so that shared pages
count once; sampled every 20 ms; the median of the three.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import statistics
import threading
import time
import warnings

import joblib
import numpy as np
import psutil

import para_core
import para_memmap

N_JOBS = 2
N_TASKS = 8


def slice_sum(a, i, n):
    k = len(a) // n
    return float(a[i * k : (i + 1) * k].sum())


def make_array(nbytes):
    return np.ones(nbytes // 8)


def make_array_pid(nbytes):
    return os.getpid(), np.ones(nbytes // 8)


def small_task(a):
    return float(a.sum())


def _private_and_orphan_shm(pid: int) -> int:
    """Anonymous memory plus mapped shared memory whose file was unlinked."""
    total = 0
    orphan = False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if line[0] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    orphan = "/dev/shm/" in line and line.rstrip().endswith("(deleted)")
                elif line.startswith("Anonymous:") or (
                    orphan and line.startswith("Rss:")
                ):
                    total += int(line.split()[1]) * 1024
    except OSError:
        pass
    return total


def _temp_files() -> int:
    total = 0
    for pattern in ("/dev/shm/para-memmap-*", "/dev/shm/joblib_memmapping*"):
        for path in glob.glob(pattern):
            for root, _, names in os.walk(path):
                for name in names:
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(root, name)).st_size
            if os.path.isfile(path):
                with contextlib.suppress(OSError):
                    total += os.stat(path).st_size
    return total


def used_memory() -> int:
    """Memory of this process tree, each shared page counted once.

    Anonymous memory of the caller and its children, plus our and joblib's
    temporary files in /dev/shm, plus mapped /dev/shm files already unlinked
    (results being read). Other users of /dev/shm are left out.
    """
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    return sum(_private_and_orphan_shm(p.pid) for p in procs) + _temp_files()


class PeakMemory:
    """Growth of :func:`used_memory` during a run, sampled every 20 ms."""

    def __init__(self) -> None:
        self.base = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, used_memory())
            time.sleep(0.02)

    def __enter__(self) -> PeakMemory:
        self.base = self.peak = used_memory()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


class Workload:
    """One side (para or joblib) of a row: untimed ``setup``, timed ``run``."""

    def __init__(self, run, setup=None, teardown=None):
        self.run = run
        self.setup = setup or (lambda: None)
        self.teardown = teardown or (lambda: None)

    def sample(self):
        self.setup()
        t = time.perf_counter()
        self.run()
        return time.perf_counter() - t

    def peak(self):
        self.setup()
        time.sleep(1.5)  # let workers release mappings of removed files
        with PeakMemory() as mem:
            self.run()
        return mem.peak - mem.base


def compare(para, joblib_side, repeat):
    """Median times and peak memory growth, para and joblib alternated."""
    times = {"para": [], "joblib": []}
    sides = {"para": para, "joblib": joblib_side}
    for i in range(repeat):
        order = ("para", "joblib") if i % 2 == 0 else ("joblib", "para")
        for name in order:
            times[name].append(sides[name].sample())
    peaks = {"para": [], "joblib": []}
    for i in range(3):
        order = ("para", "joblib") if i % 2 == 0 else ("joblib", "para")
        for name in order:
            peaks[name].append(sides[name].peak())
    for side in sides.values():
        side.teardown()
    return (
        statistics.median(times["para"]),
        statistics.median(times["joblib"]),
        statistics.median(peaks["para"]),
        statistics.median(peaks["joblib"]),
    )


def fan_out(lib, data, parallel=None):
    if parallel is None:
        parallel = lib.Parallel(n_jobs=N_JOBS)
    return parallel(lib.delayed(slice_sum)(data, i, N_TASKS) for i in range(N_TASKS))


def first_call(lib, nbytes):
    """A never-seen array each sample (made in the untimed setup)."""
    state = {}
    counter = iter(range(1, 1_000_000))

    def setup():
        state.pop("data", None)
        state["data"] = np.full(nbytes // 8, float(next(counter)))

    def run():
        fan_out(lib, state["data"])

    return Workload(run, setup, lambda: state.clear())


def later_calls(lib, nbytes, check):
    """Later calls of one with-block; one element changed before each call."""
    data = np.ones(nbytes // 8)
    parallel = lib.Parallel(n_jobs=N_JOBS)
    parallel.__enter__()
    fan_out(lib, data, parallel)  # the block's first call copies: not measured
    mid = len(data) // 2
    expected = [float(len(data) // N_TASKS * N_TASKS)]  # the slices' total

    def setup():
        data[mid] += 1.0
        expected[0] += 1.0

    def run():
        out = fan_out(lib, data, parallel)
        check.append(sum(out) == expected[0])

    def teardown():
        parallel.__exit__(None, None, None)

    return Workload(run, setup, teardown)


def separate_calls(lib, data):
    """A new Parallel for every call on the same, unchanged array."""
    fan_out(lib, data)  # seen once before: the first call is another row
    return Workload(lambda: fan_out(lib, data))


def joblib_reuse(data):
    """joblib's best case: later calls of a with-block (identity reuse)."""
    parallel = joblib.Parallel(n_jobs=N_JOBS)
    parallel.__enter__()
    fan_out(joblib, data, parallel)
    return Workload(
        lambda: fan_out(joblib, data, parallel),
        teardown=lambda: parallel.__exit__(None, None, None),
    )


def returns(lib, nbytes):
    def run():
        out = lib.Parallel(n_jobs=N_JOBS)(
            lib.delayed(make_array)(nbytes) for _ in range(N_TASKS)
        )
        assert out[-1].nbytes == nbytes
        del out

    return Workload(run)


def mixed(lib, big, ret, record):
    """One with-block: a fan-out of a big array, then the returns (timed)."""
    state = {}

    def setup():
        state["data"] = np.ones(big // 8)
        state["parallel"] = parallel = lib.Parallel(n_jobs=N_JOBS)
        parallel.__enter__()
        fan_out(lib, state["data"], parallel)

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = state["parallel"](
                lib.delayed(make_array_pid)(ret) for _ in range(N_TASKS)
            )
        record["pids"].update(pid for pid, _ in out)
        record["warnings"] += sum("restarted" in str(w.message) for w in caught)
        del out
        state["parallel"].__exit__(None, None, None)
        state.clear()

    return Workload(run, setup)


def worker_pids(lib):
    return set(lib.Parallel(n_jobs=N_JOBS)(lib.delayed(os.getpid)() for _ in range(8)))


def small_arrays(n_tasks, repeat):
    arrays = [np.ones(1000) for _ in range(n_tasks)]

    def run():
        para_core.Parallel(n_jobs=N_JOBS)(
            para_core.delayed(small_task)(a) for a in arrays
        )

    run()
    # Interleaved, so that load from other processes hits both alike.
    core, memmap = [], []
    for _ in range(repeat):
        para_memmap.disable()
        core.append(timed(run))
        para_memmap.enable()
        memmap.append(timed(run))
    return statistics.median(memmap), statistics.median(core)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = parser.parse_args()
    big = 100_000_000 if args.quick else 500_000_000
    ret = 10_000_000 if args.quick else 50_000_000
    repeat = 3 if args.quick else 5

    para_memmap.enable()
    para = para_core
    # Warm both worker pools so that start-up is not measured.
    for lib in (para, joblib):
        lib.Parallel(n_jobs=N_JOBS)(lib.delayed(abs)(-i) for i in range(8))
    rows = []

    def add(workload, result, target, **extra):
        p, j, pm, jm = result
        ratio = j / p
        rows.append(
            {
                "workload": workload,
                "para_s": p,
                "joblib_s": j,
                "ratio": ratio,
                "target": target,
                "met": ratio >= target,
                "para_peak_mb": pm / 1e6,
                "joblib_peak_mb": jm / 1e6,
                **extra,
            }
        )

    mb = big // 1_000_000
    add(
        f"fan-out {mb} MB, first call, never-seen array",
        compare(first_call(para, big), first_call(joblib, big), repeat),
        1.3,
    )
    para_check, joblib_check = [], []
    add(
        f"fan-out {mb} MB, later calls in a with-block, changed in place",
        compare(
            later_calls(para, big, para_check),
            later_calls(joblib, big, joblib_check),
            repeat,
        ),
        1.0,
        goal=1.5,
        para_sees_change=all(para_check),
        joblib_sees_change=all(joblib_check),
    )
    data = np.random.default_rng(0).random(big // 8)
    add(
        f"fan-out {mb} MB, separate calls, same unchanged array",
        compare(separate_calls(para, data), separate_calls(joblib, data), repeat),
        1.2,
    )
    shared = para_memmap.empty(data.shape)
    shared[:] = data
    add(
        f"fan-out {mb} MB, para_memmap.empty array vs joblib's reuse",
        compare(separate_calls(para, shared), joblib_reuse(data), repeat),
        1.2,
        baseline="joblib reuse",
    )
    del shared, data
    para_memmap.clear_cache()
    add(
        f"{N_TASKS} tasks returning {ret // 1_000_000} MB",
        compare(returns(para, ret), returns(joblib, ret), repeat),
        3.0,
    )
    records = {"p": {"pids": set(), "warnings": 0}, "j": {"pids": set(), "warnings": 0}}
    before = {"p": worker_pids(para), "j": worker_pids(joblib)}
    add(
        f"mixed: {mb} MB fan-out, then {N_TASKS} tasks returning "
        f"{ret // 1_000_000} MB, one with-block",
        compare(
            mixed(para, big, ret, records["p"]),
            mixed(joblib, big, ret, records["j"]),
            repeat,
        ),
        3.0,
        para_restarts=len(records["p"]["pids"] - before["p"]),
        joblib_restarts=len(records["j"]["pids"] - before["j"]),
        para_restart_warnings=records["p"]["warnings"],
        joblib_restart_warnings=records["j"]["warnings"],
    )
    # ~8 ms a call, within a few percent of each other: many cheap pairs.
    t_memmap, t_core = small_arrays(200, 12 * repeat)
    rows.append(
        {
            "workload": "200 tasks, 8 kB arrays: para-memmap vs para-core alone",
            "para_s": t_memmap,
            "joblib_s": None,
            "core_alone_s": t_core,
            "ratio": t_memmap / t_core,
            "target": "<= 1.05x (slowdown)",
        }
    )

    print(f"{'workload':70} {'para s':>8} {'joblib s':>9} {'ratio':>7}  target")
    for r in rows:
        other = r["joblib_s"] if r["joblib_s"] is not None else r["core_alone_s"]
        target = r["target"]
        if not isinstance(target, str):
            target = f">= {target}x" + (f" (goal {r['goal']}x)" if "goal" in r else "")
            target += "  met" if r["met"] else "  MISSED"
        print(
            f"{r['workload']:70} {r['para_s']:8.3f} {other:9.3f} "
            f"{r['ratio']:6.2f}x  {target}"
        )
        if "para_sees_change" in r:
            print(
                f"{'  array changed in place, next call correct (para / joblib)':70}"
                f" {r['para_sees_change']!s:>8} {r['joblib_sees_change']!s:>9}"
            )
        if "para_restarts" in r:
            print(
                f"{'  workers restarted / restart warnings (para / joblib)':70}"
                f" {r['para_restarts']:>4} / {r['para_restart_warnings']}"
                f" {r['joblib_restarts']:>5} / {r['joblib_restart_warnings']}"
            )
        if "para_peak_mb" in r:
            print(
                f"{'  peak memory growth MB (para / joblib)':70} "
                f"{r['para_peak_mb']:8.0f} {r['joblib_peak_mb']:9.0f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
