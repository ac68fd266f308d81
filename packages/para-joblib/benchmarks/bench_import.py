"""para_joblib vs joblib: what ``import`` and the first use of each part cost.

Usage::

    python bench_import.py [--quick] [--json PATH]

Each workload runs in a fresh interpreter (best of several runs, minus the
cost of starting an empty interpreter), once with ``para_joblib`` and once
with ``joblib``, so that import caches never help the second one. ``ratio`` is
joblib's time divided by para's (above 1: para is faster); ``target`` is the
smallest ratio we aim for ("importing para_joblib is cheap", issue 7).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

# name -> (code run after ``import <lib> as joblib``, target ratio or None)
WORKLOADS = {
    "import": ("pass", 5.0),
    "import + Parallel call (threads)": (
        "joblib.Parallel(n_jobs=2, backend='threading')"
        "(joblib.delayed(abs)(-i) for i in range(10))",
        None,
    ),
    "import + dump/load of a small object": (
        "import os, tempfile\n"
        "p = os.path.join(tempfile.mkdtemp(), 'x.pkl')\n"
        "joblib.dump({'a': [1, 2, 3]}, p); joblib.load(p)",
        None,
    ),
    "import + hash of a small object": ("joblib.hash({'a': [1, 2, 3]})", None),
}


def run_once(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def best(code: str, repeat: int) -> float:
    return min(run_once(code) for _ in range(repeat))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = parser.parse_args()
    repeat = 3 if args.quick else 7

    baseline = best("pass", repeat)
    results = []
    print(f"{'workload':<40}{'para':>10}{'joblib':>10}{'ratio':>8}  target")
    for name, (code, target) in WORKLOADS.items():
        para = best(f"import para_joblib as joblib\n{code}", repeat) - baseline
        lib = best(f"import joblib\n{code}", repeat) - baseline
        para, lib = max(para, 1e-6), max(lib, 1e-6)
        ratio = lib / para
        met = None if target is None else ratio >= target
        results.append(
            {
                "workload": name,
                "para_s": para,
                "joblib_s": lib,
                "ratio": ratio,
                "target": target,
                "met": met,
            }
        )
        shown = "-" if target is None else f">={target:g}x {'ok' if met else 'MISSED'}"
        print(
            f"{name:<40}{para * 1e3:>8.1f}ms{lib * 1e3:>8.1f}ms{ratio:>7.2f}x  {shown}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
