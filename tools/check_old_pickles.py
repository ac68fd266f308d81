"""Check that what an older commit wrote still loads with the working tree.

    python tools/check_old_pickles.py [COMMIT]     (default: main)

Run it with an interpreter that has the packages' dependencies (loky,
cloudpickle, numpy), e.g. ``hatch run python tools/check_old_pickles.py``.
The sources of ``para_core``, ``para_persist`` and ``para_cache`` at COMMIT
are extracted to a temporary folder; a first process importing them pickles
para-core objects (plain pickle and ``para_persist.dump``) and fills a
``para_cache.Memory`` folder; a second process importing the working tree
loads every object, reads every dump and calls the cached function, which
must come from the cache (it is not run again). Prints one line per check;
exits 1 on the first failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ["para_core", "para_persist", "para_cache"]

OBJECTS = """
import argparse
from para_core import (
    BatchedCalls, LokyBackend, MultiprocessingBackend, SequentialBackend,
    ThreadingBackend, TransportRequest, WorkerTerminatedError, delayed,
    wrap_non_picklable_objects,
)
from para_core._config import default_parallel_config

Namespace = wrap_non_picklable_objects(argparse.Namespace)
OBJECTS = {
    "batch": BatchedCalls(
        [delayed(abs)(-1), delayed(divmod)(7, 2)],
        (ThreadingBackend(nesting_level=1), 2), 5,
    ),
    "backends": [LokyBackend(), MultiprocessingBackend(), SequentialBackend(),
                 ThreadingBackend(nesting_level=1)],
    "wrapped_function": wrap_non_picklable_objects(abs),
    "wrapped_instance": Namespace(a=1),
    "error": WorkerTerminatedError("worker gone"),
    "default": default_parallel_config["n_jobs"],
    "request": TransportRequest(backend="loky", n_jobs=2, temp_folder=None,
                                max_nbytes=10, mmap_mode="r"),
}
"""

WRITE = (
    OBJECTS
    + """
import pickle, sys
import para_persist
from para_cache import Memory
sys.path.insert(0, FOLDER)
from cached_module import twice

with open(FOLDER + "/objects.pkl", "wb") as fh:
    pickle.dump(OBJECTS, fh)
para_persist.dump(OBJECTS, FOLDER + "/objects.joblib")
para_persist.dump(OBJECTS, FOLDER + "/objects.joblib.z", compress=3)
mem = Memory(FOLDER + "/cache", verbose=0)
assert mem.cache(twice)(21) == 42
"""
)

READ = """
import os, pickle, sys
import para_core, para_persist
from para_cache import Memory
sys.path.insert(0, FOLDER)
from cached_module import twice

assert para_core.__file__.startswith(SOURCES), para_core.__file__

def check(objects, label):
    batch = objects["batch"]
    assert batch() == [1, (3, 1)] and batch.first_index == 5, batch
    assert type(batch) is para_core.BatchedCalls
    kinds = [type(b).__name__ for b in objects["backends"]]
    assert kinds == ["LokyBackend", "MultiprocessingBackend", "SequentialBackend",
                     "ThreadingBackend"], kinds
    assert all(isinstance(b, para_core.ParallelBackendBase)
               for b in objects["backends"])
    assert objects["wrapped_function"](-4) == 4
    assert objects["wrapped_instance"].a == 1
    assert isinstance(objects["error"], para_core.WorkerTerminatedError)
    assert objects["default"].value is None
    assert objects["request"].max_nbytes == 10
    print(f"ok: {label}")

with open(FOLDER + "/objects.pkl", "rb") as fh:
    check(pickle.load(fh), "objects pickled by the old commit")
check(para_persist.load(FOLDER + "/objects.joblib"), "para_persist.dump file")
check(para_persist.load(FOLDER + "/objects.joblib.z"), "compressed dump file")
os.environ["PARA_CHECK_NOT_CALLED"] = "1"
assert Memory(FOLDER + "/cache", verbose=0).cache(twice)(21) == 42
print("ok: cache entry written by the old commit is read, not recomputed")
"""

CACHED_MODULE = """
import os

def twice(x):
    if os.environ.get("PARA_CHECK_NOT_CALLED"):
        raise AssertionError("recomputed: the old cache entry was not found")
    return 2 * x
"""


def _extract(commit: str, dest: str) -> str:
    archive = os.path.join(dest, "src.tar")
    paths = [f"packages/{p.replace('_', '-')}/src/{p}" for p in PACKAGES]
    with open(archive, "wb") as fh:
        subprocess.run(
            ["git", "-C", ROOT, "archive", "--format=tar", commit, *paths],
            stdout=fh,
            check=True,
        )
    sources = os.path.join(dest, "old")
    with tarfile.open(archive) as tar:
        tar.extractall(sources, filter="data")
    return sources


def _run(code: str, sources: list[str], folder: str, label: str) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(sources)
    env["PARA_CORE_PURE_PYTHON"] = "1"  # no compiled module in the old sources
    prelude = f"FOLDER = {folder!r}\nSOURCES = {sources[0]!r}\n"
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
    )
    sys.stdout.write(proc.stdout)
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"FAILED: {label}")


def main() -> None:
    commit = sys.argv[1] if len(sys.argv) > 1 else "main"
    with tempfile.TemporaryDirectory(prefix="para-old-pickles-") as tmp:
        old = _extract(commit, tmp)
        folder = os.path.join(tmp, "data")
        os.mkdir(folder)
        with open(os.path.join(folder, "cached_module.py"), "w") as fh:
            fh.write(CACHED_MODULE)
        old_src = [
            os.path.join(old, "packages", p.replace("_", "-"), "src") for p in PACKAGES
        ]
        new_src = [
            os.path.join(ROOT, "packages", p.replace("_", "-"), "src") for p in PACKAGES
        ]
        _run(WRITE, old_src, folder, f"writing with {commit}")
        print(f"written by {commit}: objects.pkl, two dumps, a cache entry")
        _run(READ, new_src, folder, "reading with the working tree")


if __name__ == "__main__":
    main()
