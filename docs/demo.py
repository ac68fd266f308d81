"""``make demo``: a realistic job through para_joblib, step by step.

Bootstrap statistics of a ~200 MB dataset::

    dataset (25M float64, 200 MB, in the caller)
      -> Memory.cache(bootstrap)            key = fast hash of the 200 MB array
           -> Parallel(n_jobs=2)            the array reaches the workers once,
                20 tasks x 10 resamples     through shared memory (para-memmap)
                under a progress bar        (progress_bar=True: tqdm)
           <- 200 x (mean, std, p2.5, p50, p97.5)
      -> second call: answered from the cache, no task runs
      -> dump(result, compress=("zstd", 3)) -> load -> same numbers

Every step prints how long it took. All files live in one folder under the
system temp dir, removed at the end (also on error or Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager

import numpy as np

import para_joblib as joblib

N_SAMPLES = 25_000_000  # 200 MB of float64
N_RESAMPLES = 200
RESAMPLES_PER_TASK = 10
RESAMPLE_SIZE = 1_000_000  # m-out-of-n bootstrap: each resample draws 1M points
STATISTICS = ("mean", "std", "p2.5", "p50", "p97.5")


@contextmanager
def step(title: str):
    print(f"-> {title} ...", flush=True)
    start = time.perf_counter()
    yield
    print(f"   done in {time.perf_counter() - start:.2f} s", flush=True)


def resample_statistics(data: np.ndarray, seeds: list[int]) -> np.ndarray:
    """Statistics of ``len(seeds)`` bootstrap resamples of ``data``.

    Runs in a worker; ``data`` arrives as a read-only view of shared memory.
    """
    out = np.empty((len(seeds), len(STATISTICS)))
    for row, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        sample = data[rng.integers(0, data.shape[0], RESAMPLE_SIZE)]
        out[row, 0] = sample.mean()
        out[row, 1] = sample.std()
        out[row, 2:] = np.percentile(sample, [2.5, 50, 97.5])
    return out


def bootstrap(data: np.ndarray, n_resamples: int, n_jobs: int = 2) -> dict:
    """Bootstrap distribution of the statistics, computed in parallel."""
    seeds = list(range(n_resamples))
    chunks = [
        seeds[i : i + RESAMPLES_PER_TASK]
        for i in range(0, n_resamples, RESAMPLES_PER_TASK)
    ]
    parallel = joblib.Parallel(n_jobs=n_jobs, **progress_options())
    # A list, not a generator: the progress bar then knows the total.
    rows = parallel([joblib.delayed(resample_statistics)(data, c) for c in chunks])
    table = np.vstack(rows)
    return {
        "statistics": STATISTICS,
        "resamples": table,
        "estimate": table.mean(axis=0),
        "ci95": np.percentile(table, [2.5, 97.5], axis=0),
    }


def arrives_shared(data: np.ndarray) -> tuple[bool, bool]:
    """In a worker: is ``data`` a view of shared memory, and read-only?"""
    import para_memmap

    return para_memmap.has_shareable_memory(data), not data.flags.writeable


def progress_options() -> dict:
    """A tqdm progress bar (para-core's ``progress`` extra), else verbose lines."""
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return {"verbose": 10}
    return {"progress_bar": True}


def main() -> int:
    workdir = tempfile.mkdtemp(prefix="para-demo-")
    print(f"para_joblib {joblib.__version__}: bootstrap demo in {workdir}")
    try:
        run(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"removed {workdir}")
    return 0


def run(workdir: str) -> None:
    total = time.perf_counter()
    with step(f"generating the dataset ({N_SAMPLES * 8 / 1e6:.0f} MB of float64)"):
        rng = np.random.default_rng(2026)
        data = rng.lognormal(mean=0.0, sigma=0.5, size=N_SAMPLES)

    with step("checking how the dataset reaches the workers"):
        seen = joblib.Parallel(n_jobs=2)(
            joblib.delayed(arrives_shared)(data) for _ in range(2)
        )
    shared, read_only = (all(flags) for flags in zip(*seen))
    print(f"   shared memory in every worker: {shared}, read-only: {read_only}")

    memory = joblib.Memory(os.path.join(workdir, "cache"), verbose=0)
    cached_bootstrap = memory.cache(bootstrap, ignore=["n_jobs"])

    with step(f"first run: {N_RESAMPLES} resamples with Parallel(n_jobs=2)"):
        first = cached_bootstrap(data, N_RESAMPLES, n_jobs=2)
    with step("second run: same call, answered from the Memory cache"):
        second = cached_bootstrap(data, N_RESAMPLES, n_jobs=2)
    assert np.array_equal(first["resamples"], second["resamples"])

    print("   bootstrap estimates (95% interval):")
    for name, est, lo, hi in zip(
        first["statistics"], first["estimate"], *first["ci95"]
    ):
        print(f"     {name:>6}: {est:8.5f}  [{lo:8.5f}, {hi:8.5f}]")

    path = os.path.join(workdir, "bootstrap.joblib.zst")
    with step('dump(result, compress=("zstd", 3))'):
        joblib.dump(first, path, compress=("zstd", 3))
    print(f"   {os.path.getsize(path) / 1e3:.1f} kB on disk")
    with step("load it back"):
        loaded = joblib.load(path)
    assert np.array_equal(loaded["resamples"], first["resamples"])
    assert tuple(loaded["statistics"]) == STATISTICS

    with step("hash of the 200 MB dataset (xxh3, as Memory's keys)"):
        digest = joblib.hash(data, hash_name="xxh3")
    print(f"   {digest}")
    print(f"total: {time.perf_counter() - total:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
