"""joblib.parallel's module-level names that code assigns or reads."""

from __future__ import annotations

import importlib
import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest
from _helpers import run_python

import para_core
from para_joblib import parallel


def test_assigning_default_backend_sets_paras():
    # joblib's tests (and code restoring a default) assign the module name.
    before = parallel.DEFAULT_BACKEND
    try:
        parallel.register_parallel_backend(
            "threading", parallel.BACKENDS["threading"], make_default=True
        )
        assert type(parallel.get_active_backend()[0]).__name__ == "ThreadingBackend"
        parallel.DEFAULT_BACKEND = "loky"
        assert parallel.DEFAULT_BACKEND == para_core.DEFAULT_BACKEND == "loky"
        assert type(parallel.get_active_backend()[0]).__name__ == "LokyBackend"
        with pytest.raises(ValueError, match="registered backend"):
            parallel.DEFAULT_BACKEND = "no-such-backend"
    finally:
        parallel.DEFAULT_BACKEND = before


def test_backend_registries_are_joblibs_names():
    assert {"loky", "threading", "multiprocessing", "sequential"} <= set(
        parallel.BACKENDS
    )
    assert "dask" in parallel.EXTERNAL_BACKENDS
    assert parallel.BACKENDS is para_core.BACKENDS


@pytest.fixture(params=["joblib", "para_joblib"])
def jl(request):
    return importlib.import_module(request.param)


def test_multiprocessing_name_activates_the_class_users_import(jl):
    # joblib's test_backend_context_manager: the backend that
    # parallel_config(backend="multiprocessing") activates is an instance
    # of joblib._parallel_backends.MultiprocessingBackend (clients subclass
    # that class, and compare types).
    backends = importlib.import_module(f"{jl.__name__}._parallel_backends")
    module = importlib.import_module(f"{jl.__name__}.parallel")
    assert module.MultiprocessingBackend is backends.MultiprocessingBackend
    assert module.BACKENDS["multiprocessing"] is backends.MultiprocessingBackend
    for config in (jl.parallel_config, jl.parallel_backend):
        with config("multiprocessing", n_jobs=2):
            active, n_jobs = module.get_active_backend()
            assert type(active) is backends.MultiprocessingBackend and n_jobs == 2
            par = jl.Parallel()
            assert type(par._backend) is backends.MultiprocessingBackend
            # para: each Parallel has its own (joblib shares the configured one)
            assert (par._backend is active) == (jl.__name__ == "joblib")
            assert par(jl.delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]
    spawn = multiprocessing.get_context("spawn")
    par = jl.Parallel(n_jobs=2, backend=spawn)
    assert type(par._backend) is backends.MultiprocessingBackend


def test_joblib_backends_registered_on_first_use():
    out = run_python(
        """
        import para_core
        import para_joblib

        para_joblib.delayed  # needs no backend: nothing registered yet
        print(para_core.BACKENDS["multiprocessing"].__module__)
        from para_joblib.parallel import BACKENDS, MultiprocessingBackend

        assert BACKENDS["multiprocessing"] is MultiprocessingBackend
        print(para_core.BACKENDS["multiprocessing"].__module__)
        print(
            para_core.Parallel(n_jobs=2, backend="multiprocessing")(
                para_core.delayed(abs)(-i) for i in range(3)
            )
        )
        """
    )
    assert out.splitlines() == [
        "para_core.backends._multiprocessing",
        "para_joblib._parallel_backends",
        "[0, 1, 2]",
    ]


def test_backend_the_program_registered_under_the_name_stays():
    out = run_python(
        """
        import para_core

        class Mine(para_core.MultiprocessingBackend):
            pass

        para_core.register_parallel_backend("multiprocessing", Mine)
        import para_joblib

        with para_joblib.parallel_config("multiprocessing"):
            print(type(para_joblib.parallel.get_active_backend()[0]).__name__)
        """
    )
    assert out.strip() == "Mine"


def test_parallel_api_without_multiprocessing_runs_serially(tmp_path):
    # Where Python's _multiprocessing module cannot be imported (some
    # sandboxes), joblib still imports and runs Parallel(n_jobs=1): so must
    # the first use of para_joblib's parallel API, which registers joblib's
    # backend classes.
    (tmp_path / "_multiprocessing.py").write_text(
        'raise ImportError("no _multiprocessing here")\n'
    )
    code = textwrap.dedent(
        """
        import math
        import para_joblib as joblib
        from para_joblib._parallel_backends import MultiprocessingBackend

        tasks = (joblib.delayed(math.sqrt)(i**2) for i in range(4))
        print(joblib.Parallel(n_jobs=1)(tasks))
        print(joblib.parallel.BACKENDS["multiprocessing"] is MultiprocessingBackend)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0.0,", "1.0,", "2.0,", "3.0]", "True"]
