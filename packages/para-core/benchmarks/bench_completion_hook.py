"""What the per-batch completion hook costs: bench_core's loky 100k rows.

Run ``python bench_completion_hook.py [--baseline COMMIT] [--rounds N]``.
Each sample is a fresh process running 100 000 trivial tasks on loky with
n_jobs=2 (best of 5 after a warm-up call), as ``list`` and ``generator``:

- ``baseline``: para-core's source at COMMIT (``git archive``; default: the
  commit before the hook was added), with this checkout's compiled
  ``_speedups``;
- ``now``: this checkout, no ``BatchCompletionCallBack`` subclass installed
  (the engine must make no object and no call per batch);
- ``now+hook``: this checkout with a subclass installed that only calls
  ``super().__call__``.

The three are alternated round by round (the machine's speed drifts) and the
best rate of each is printed with its ratio to the baseline. Not a test: it
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", "src"))

CHILD = r"""
import json, sys, time
import para_core
from para_core import Parallel, delayed

def trivial(x):
    return x

mode, return_as = sys.argv[1], sys.argv[2]
if mode == "hook":
    class Hook(para_core.BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            return super().__call__(*args, **kwargs)
    para_core.set_batch_completion_callback(Hook)
n = 100_000

def run():
    out = Parallel(n_jobs=2, backend="loky", return_as=return_as)(
        delayed(trivial)(i) for i in range(n)
    )
    for _ in out:
        pass

run()
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    run()
    best = min(best, time.perf_counter() - t)
print(json.dumps({"file": para_core.__file__, "rate": n / best}))
"""


def baseline_tree(commit: str, into: str) -> str:
    """para-core's ``src`` at ``commit``, with this checkout's _speedups."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "packages/para-core/src"],
        cwd=top,
        capture_output=True,
        check=True,
    ).stdout
    path = os.path.join(into, "archive.tar")
    with open(path, "wb") as f:
        f.write(archive)
    with tarfile.open(path) as tar:
        tar.extractall(into, filter="data")
    src = os.path.join(into, "packages", "para-core", "src")
    for built in glob.glob(os.path.join(SRC, "para_core", "_speedups*.so")):
        shutil.copy(built, os.path.join(src, "para_core"))
    return src


def sample(src: str | None, mode: str, return_as: str) -> float:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, return_as],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = json.loads(out)
    # the right copy of para_core was imported
    assert (src is not None) == found["file"].startswith(src or "\0"), found
    return found["rate"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="57264d4")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_tree(args.baseline, tmp)
        runs = [("baseline", base, "none"), ("now", None, "none")]
        runs.append(("now+hook", None, "hook"))
        best: dict[tuple[str, str], float] = {}
        for _ in range(args.rounds):
            for return_as in ("list", "generator"):
                for label, src, mode in runs:
                    rate = sample(src, mode, return_as)
                    key = (return_as, label)
                    best[key] = max(best.get(key, 0.0), rate)
    print(f"loky, 100k trivial tasks, n_jobs=2, best of {args.rounds} rounds")
    for return_as in ("list", "generator"):
        ref = best[(return_as, "baseline")]
        for label, _src, _mode in runs:
            rate = best[(return_as, label)]
            print(
                f"  {return_as:9s} {label:9s} {rate / 1e3:8.0f}k tasks/s"
                f"  {rate / ref:5.2f}x baseline"
            )


if __name__ == "__main__":
    main()
