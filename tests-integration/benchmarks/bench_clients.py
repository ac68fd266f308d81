"""Real clients' workloads on para (standing in for joblib) vs the real joblib.

Usage (in the ``bench`` hatch environment: ``hatch run bench:clients``)::

    python tests-integration/benchmarks/bench_clients.py [--rounds N]
        [--only WORKLOAD ...] [--json PATH]

Every workload runs in a fresh Python process, once with ``PARA_AS_JOBLIB=1``
(para_joblib answers every ``import joblib``, in the process and in its
workers: scikit-learn runs on para without knowing it) and once without (the
real joblib), the two alternating, ``--rounds`` times each (default 3); the
best time of each side is kept. ``ratio`` is joblib's time divided by para's:
above 1, para is faster. ``target`` is the smallest ratio issue 14 asks for.

Rows, each timed inside its process (interpreter start and imports left out,
except in the last row, which is about them):

* GridSearchCV(LogisticRegression) over 200 values of C x 5 folds, 300 samples
  (n_jobs=2; the workers start in this call).
* cross_val_score(Ridge(), X, y, cv=4, n_jobs=2) on a 320 MB X never seen
  before (first call: the workers start, X is shared with them), then the
  mean of 3 more calls on the same, unchanged X (labelled reuse: para may keep
  X shared from one call to the next; joblib copies it again every call).
* The 320 MB first call in its two parts: a first call on a small X (the
  workers start and import scikit-learn, as in any first call), then a first
  call on a 320 MB X never seen, on those running workers.
* RandomForestClassifier(200 trees, n_jobs=2).fit (threads).
* Pipeline(memory=Memory(...)) in a GridSearchCV (n_jobs=2), fitted twice:
  both fits, the second served by the cache.
* dump(compress=3) then load of a fitted 100-tree forest.
* The first Parallel call of a fresh process that has imported numpy: import
  of para_joblib (or joblib) plus Parallel(n_jobs=2) over 10 small tasks.
  Target: at most half joblib's time (ratio >= 2).

A full run takes about 2 minutes on a quiet 2-core machine, 5 on a busy one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# ---------------------------------------------------------------- workloads
# Each runs in a child process and returns {row name: seconds}.


def _grid_search() -> dict[str, float]:
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    X, y = make_classification(300, 20, random_state=0)
    search = GridSearchCV(
        LogisticRegression(max_iter=200), {"C": np.logspace(-3, 3, 200)}, cv=5, n_jobs=2
    )
    start = time.perf_counter()
    search.fit(X, y)
    elapsed = time.perf_counter() - start
    assert len(search.cv_results_["params"]) == 200
    return {"GridSearchCV LogisticRegression, 200 C x 5 folds": elapsed}


def _ridge_320mb() -> dict[str, float]:
    import numpy as np
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(0)
    X = rng.standard_normal((400_000, 100))  # 320 MB of float64
    y = X @ rng.standard_normal(100) + 0.1 * rng.standard_normal(len(X))
    assert X.nbytes == 320_000_000
    start = time.perf_counter()
    first = cross_val_score(Ridge(), X, y, cv=4, n_jobs=2)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(3):
        again = cross_val_score(Ridge(), X, y, cv=4, n_jobs=2)
    again_s = (time.perf_counter() - start) / 3
    np.testing.assert_allclose(again, first)
    return {
        "cross_val_score Ridge, 320 MB X, first call": first_s,
        "cross_val_score Ridge, same 320 MB X, 3 more calls (reuse), per call": again_s,
    }


def _ridge_warm_workers() -> dict[str, float]:
    # The first call's two parts apart: the workers' start (an interpreter
    # each, importing scikit-learn: both sides pay it alike), timed on a
    # small X; then a first call on a 320 MB X never seen, on those workers.
    import numpy as np
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import cross_val_score

    rng = np.random.default_rng(1)
    small = rng.standard_normal((2000, 100))
    start = time.perf_counter()
    cross_val_score(Ridge(), small, small[:, 0], cv=4, n_jobs=2)
    start_s = time.perf_counter() - start
    X = rng.standard_normal((400_000, 100))
    y = X @ rng.standard_normal(100) + 0.1 * rng.standard_normal(len(X))
    start = time.perf_counter()
    cross_val_score(Ridge(), X, y, cv=4, n_jobs=2)
    return {
        "cross_val_score Ridge, small X, first call (workers start)": start_s,
        "cross_val_score Ridge, 320 MB X never seen, workers running": (
            time.perf_counter() - start
        ),
    }


def _forest() -> dict[str, float]:
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(2000, 20, random_state=0)
    forest = RandomForestClassifier(200, n_jobs=2, random_state=0)
    start = time.perf_counter()
    forest.fit(X, y)
    return {
        "RandomForestClassifier 200 trees fit, n_jobs=2": time.perf_counter() - start
    }


def _cached_pipeline() -> dict[str, float]:
    import numpy as np
    from joblib import Memory
    from sklearn.datasets import make_classification
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    X, y = make_classification(3000, 300, n_informative=20, random_state=0)
    with tempfile.TemporaryDirectory() as location:
        pipe = Pipeline(
            [
                ("pca", PCA(30, random_state=0)),
                ("clf", LogisticRegression(max_iter=300)),
            ],
            memory=Memory(location, verbose=0),
        )
        search = GridSearchCV(pipe, {"clf__C": np.logspace(-2, 2, 10)}, cv=3, n_jobs=2)
        start = time.perf_counter()
        search.fit(X, y)
        search.fit(X, y)
        elapsed = time.perf_counter() - start
    return {"Pipeline(memory=Memory) GridSearchCV, fitted twice": elapsed}


def _dump_load() -> dict[str, float]:
    from joblib import dump, load
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(2000, 20, random_state=0)
    forest = RandomForestClassifier(100, random_state=0).fit(X, y)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "forest.joblib")
        start = time.perf_counter()
        dump(forest, path, compress=3)
        dumped = time.perf_counter()
        again = load(path)
        loaded = time.perf_counter()
    assert (again.predict(X) == forest.predict(X)).all()
    return {
        "dump(compress=3) + load, fitted 100-tree forest": loaded - start,
        "_dump": dumped - start,
        "_load": loaded - dumped,
    }


_FIRST_CALL = """
import sys, time
import numpy
start = time.perf_counter()
if sys.argv[1] == "para":
    import para_joblib as joblib
else:
    import joblib
out = joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(10))
elapsed = time.perf_counter() - start
assert out == list(range(10))
print(elapsed)
"""


def _first_call(lib: str) -> dict[str, float]:
    # Its own interpreter, with neither the switch nor anything imported but
    # numpy: para_joblib imported by name, as a user migrating would.
    env = {k: v for k, v in os.environ.items() if k != "PARA_AS_JOBLIB"}
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL, lib],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "first Parallel call in a fresh process (numpy imported)": float(out.stdout)
    }


WORKLOADS = {
    "grid": _grid_search,
    "ridge": _ridge_320mb,
    "ridge-parts": _ridge_warm_workers,
    "forest": _forest,
    "pipeline": _cached_pipeline,
    "dump": _dump_load,
    "first": _first_call,
}

# Row -> target (smallest joblib/para ratio). None: no row slower than joblib.
TARGETS = {
    "GridSearchCV LogisticRegression, 200 C x 5 folds": 1.0,
    "cross_val_score Ridge, 320 MB X, first call": 1.5,
    "cross_val_score Ridge, same 320 MB X, 3 more calls (reuse), per call": 1.2,
    # The first call in two parts (not rows of the issue: no target but 1.0).
    "cross_val_score Ridge, small X, first call (workers start)": 1.0,
    "cross_val_score Ridge, 320 MB X never seen, workers running": 1.0,
    "RandomForestClassifier 200 trees fit, n_jobs=2": 1.0,
    "Pipeline(memory=Memory) GridSearchCV, fitted twice": 1.8,
    "dump(compress=3) + load, fitted 100-tree forest": 1.0,
    "first Parallel call in a fresh process (numpy imported)": 2.0,
}


# ------------------------------------------------------------------- driver
def _child(workload: str, lib: str) -> None:
    if workload == "first":
        result = _first_call(lib)
    else:
        import joblib

        expected = "para_joblib" if lib == "para" else "joblib"
        if joblib.__name__ != expected:
            raise SystemExit(
                f"expected {expected} to answer 'import joblib', got {joblib}"
            )
        result = WORKLOADS[workload]()
    print("RESULT " + json.dumps(result))


def _run(workload: str, lib: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PARA_AS_JOBLIB"}
    if lib == "para":
        env["PARA_AS_JOBLIB"] = "1"
    proc = subprocess.run(
        [sys.executable, __file__, "--child", workload, lib],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{workload} on {lib} failed:\n{proc.stdout}\n{proc.stderr}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def _compile_bytecode() -> None:
    """Compile every module the workloads may import, once.

    A user's pip install ships with compiled bytecode; an environment made
    with uv, or a shell with PYTHONDONTWRITEBYTECODE set (as here), has none,
    and every process (the workers included) would compile scikit-learn,
    scipy and loky from source on import: seconds that both sides pay and
    that hide the differences this benchmark is about.
    """
    import compileall
    import importlib.util
    import sysconfig

    folders = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    for name in (
        "para_core",
        "para_memmap",
        "para_persist",
        "para_cache",
        "para_joblib",
    ):
        # para's packages, installed editable from their source folders
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            folders.add(os.path.dirname(os.path.dirname(spec.origin)))
    for folder in sorted(folders):
        if os.path.isdir(folder):
            compileall.compile_dir(folder, quiet=2, workers=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs per side (best kept)"
    )
    parser.add_argument(
        "--only", nargs="*", choices=sorted(WORKLOADS), help="workloads"
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0

    _compile_bytecode()
    best: dict[str, dict[str, float]] = {}
    begin = time.perf_counter()
    for workload in args.only or list(WORKLOADS):
        for round_ in range(args.rounds):
            # Alternate which side goes first, so that neither always runs
            # right after the other has warmed (or loaded) the machine.
            for lib in ("para", "joblib") if round_ % 2 == 0 else ("joblib", "para"):
                for row, seconds in _run(workload, lib).items():
                    side = best.setdefault(row, {})
                    side[lib] = min(side.get(lib, float("inf")), seconds)
            print(f"  {workload}: round {round_ + 1}/{args.rounds} done", flush=True)

    results = []
    print(f"\n{'workload':<72}{'para':>9}{'joblib':>9}{'ratio':>8}  target")
    for row, sides in best.items():
        if row.startswith("_"):
            continue
        para, lib = sides["para"], sides["joblib"]
        ratio = lib / para
        target = TARGETS[row]
        met = ratio >= target
        record = {
            "workload": row,
            "para_s": para,
            "joblib_s": lib,
            "ratio": ratio,
            "target": target,
            "met": met,
            "rounds": args.rounds,
        }
        if row.startswith("dump"):
            for part in ("_dump", "_load"):
                record[f"para{part}_s"] = best[part]["para"]
                record[f"joblib{part}_s"] = best[part]["joblib"]
        results.append(record)
        print(
            f"{row:<72}{para:>8.3f}s{lib:>8.3f}s{ratio:>7.2f}x  "
            f">={target:g}x {'ok' if met else 'MISSED'}"
        )
    if "_dump" in best:
        d, ld = best["_dump"], best["_load"]
        print(
            f"  (dump: para {d['para']:.3f}s, joblib {d['joblib']:.3f}s; "
            f"load: para {ld['para']:.3f}s, joblib {ld['joblib']:.3f}s)"
        )
    print(
        f"\nbest of {args.rounds} alternated runs per side; {time.perf_counter() - begin:.0f}s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
