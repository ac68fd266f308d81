"""Where no worker process can run, para_core still imports and runs tasks
sequentially, as joblib does: no ``_multiprocessing`` module, no semaphores,
or ``JOBLIB_MULTIPROCESSING=0``."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
from _helpers import getpid, square

import para_core
from para_core import Parallel, SequentialBackend, delayed

# Run in a fresh interpreter where importing _multiprocessing fails, as in
# Pyodide or some serverless runtimes; prints what each call did, as JSON.
BLOCKED = r"""
import importlib, importlib.abc, json, sys, warnings

class NoMultiprocessing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "_multiprocessing":
            raise ImportError("No module named '_multiprocessing'")

sys.meta_path.insert(0, NoMultiprocessing())
sys.modules.pop("_multiprocessing", None)
module = importlib.import_module(sys.argv[1])
report = {"cpu_count": module.cpu_count(), "effective": module.effective_n_jobs(-1)}
cases = [
    {"n_jobs": 1}, {"n_jobs": 2}, {"n_jobs": -1}, {"n_jobs": 2, "backend": "loky"},
    {"n_jobs": 2, "backend": "multiprocessing"}, {"n_jobs": 2, "backend": "threading"},
    {"n_jobs": 2, "return_as": "generator"},
]
for kwargs in cases:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        par = module.Parallel(**kwargs)
        out = list(par(module.delayed(abs)(-i) for i in range(5)))
    report[json.dumps(kwargs)] = [
        type(par._backend).__name__, out, [str(w.message) for w in caught]
    ]
print(json.dumps(report))
"""


def run_blocked(module: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED, module],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_without_multiprocessing_module_runs_sequentially():
    report = run_blocked("para_core")
    assert report.pop("cpu_count") == 1
    assert report.pop("effective") == 1
    for case, (backend, out, warned) in report.items():
        assert backend == "SequentialBackend", case
        assert out == [0, 1, 2, 3, 4], case
        name = json.loads(case).get("backend")
        if name in ("loky", "multiprocessing"):
            assert warned == [
                f"joblib backend '{name}' is not available on your system, "
                "falling back to threading."
            ]
        else:
            assert warned == [], case


def _runs_in_caller(**kwargs) -> bool:
    par = Parallel(n_jobs=2, **kwargs)
    pids = par(delayed(getpid)(i) for i in range(4))
    import os

    return isinstance(par._backend, SequentialBackend) and set(pids) == {os.getpid()}


def test_joblib_multiprocessing_0_asks_for_serial_mode(monkeypatch):
    monkeypatch.setenv("JOBLIB_MULTIPROCESSING", "0")
    assert para_core.cpu_count() == 1
    assert _runs_in_caller()
    with pytest.warns(UserWarning, match="backend 'loky' is not available"):
        assert _runs_in_caller(backend="loky")
    monkeypatch.setenv("JOBLIB_MULTIPROCESSING", "1")
    assert para_core.cpu_count() >= 1
    assert Parallel(n_jobs=2, backend="threading")(
        delayed(square)(i) for i in range(3)
    ) == [0, 1, 4]


def test_no_semaphores_means_serial_mode_with_a_warning(monkeypatch):
    import _multiprocessing

    from para_core import _mp

    def no_semaphores(*args):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(_multiprocessing, "SemLock", no_semaphores)
    monkeypatch.setattr(_mp, "_SEMAPHORES", None)  # probe again
    with pytest.warns(UserWarning, match="Function not implemented.*serial mode"):
        assert not _mp.processes_available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, not at every call
        assert para_core.cpu_count() == 1
        assert _runs_in_caller(backend="threading")
    monkeypatch.undo()
    assert _mp.processes_available()
