"""Differential tests: Parallel in para_joblib against the pip-installed joblib.

Same inputs through both, compare results, exception types and verbose lines
(modulo timings), across backends and ``return_as`` modes.
"""

from __future__ import annotations

import io
import multiprocessing
import re
from contextlib import redirect_stderr, redirect_stdout

import joblib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import para_joblib

BACKENDS = ["loky", "threading", "multiprocessing", "sequential"]
RETURN_AS = ["list", "generator", "generator_unordered"]

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def task(x, mode):
    # A module-level function, so every backend (multiprocessing too) can
    # pickle it by reference.
    if mode == "raise-value" and x % 7 == 3:
        raise ValueError(f"bad {x}")
    if mode == "raise-key" and x % 5 == 2:
        raise KeyError(x)
    if mode == "raise-zero" and x % 4 == 1:
        return 1 / 0
    return (x, x * x, str(x))


def run(module, backend, return_as, items, mode, n_jobs=2, **kwargs):
    """Return ('ok', results) or ('error', exception type name)."""
    try:
        out = module.Parallel(
            n_jobs=n_jobs, backend=backend, return_as=return_as, **kwargs
        )(module.delayed(task)(x, mode) for x in items)
        out = list(out)
        if return_as == "generator_unordered":
            out = sorted(out)
        return "ok", out
    except Exception as exc:
        return "error", type(exc).__name__


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("return_as", RETURN_AS)
@SETTINGS
@given(
    items=st.lists(st.integers(-1000, 1000), max_size=40),
    mode=st.sampled_from(["ok", "raise-value", "raise-key", "raise-zero"]),
    n_jobs=st.sampled_from([1, 2, -1]),
)
def test_results_and_exception_types_agree(backend, return_as, items, mode, n_jobs):
    ours = run(para_joblib, backend, return_as, items, mode, n_jobs=n_jobs)
    theirs = run(joblib, backend, return_as, items, mode, n_jobs=n_jobs)
    if backend == "multiprocessing" and return_as != "list":
        # joblib's multiprocessing backend refuses generators (ValueError
        # "does not support return_as=generator"); para's supports them, a
        # deliberate extension: it must then behave as the list mode does.
        assert theirs == ("error", "ValueError")
        theirs = run(joblib, backend, "list", items, mode, n_jobs=n_jobs)
        if return_as == "generator_unordered" and theirs[0] == "ok":
            theirs = ("ok", sorted(theirs[1]))
    assert ours == theirs


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_jobs": 0},
        {"n_jobs": 2, "backend": "no-such-backend"},
        {"n_jobs": 2, "return_as": "tuple"},
        {"n_jobs": 2, "prefer": "gpu"},
        {"n_jobs": 2, "require": "nothing"},
        {"n_jobs": 2, "batch_size": 0},
        {"n_jobs": 2, "pre_dispatch": "3 * bogus"},
        {"n_jobs": 2, "prefer": "processes", "require": "sharedmem"},
    ],
)
def test_bad_arguments_raise_the_same_exception_type(kwargs):
    def attempt(module):
        try:
            module.Parallel(**kwargs)(module.delayed(abs)(-i) for i in range(4))
        except Exception as exc:
            return type(exc)
        return None

    theirs = attempt(joblib)
    assert theirs is not None
    assert attempt(para_joblib) is theirs


@pytest.mark.parametrize("n_jobs", [None, 1, 2, -1, -2, 0.5, 3])
def test_effective_n_jobs_agrees(n_jobs):
    assert para_joblib.effective_n_jobs(n_jobs) == joblib.effective_n_jobs(n_jobs)


def test_cpu_count_agrees():
    assert para_joblib.cpu_count() == joblib.cpu_count()
    assert para_joblib.cpu_count(only_physical_cores=True) == joblib.cpu_count(
        only_physical_cores=True
    )


def test_parallel_config_agrees():
    for module in (para_joblib, joblib):
        with module.parallel_config(backend="threading", n_jobs=2):
            out = module.Parallel()(module.delayed(task)(i, "ok") for i in range(5))
        assert out == [task(i, "ok") for i in range(5)]


_TIMING = re.compile(r"\d+(\.\d+)?\s*(s|min|ms)\b")


def _verbose_lines(module, backend, n_tasks, verbose):
    stream = io.StringIO()
    with redirect_stderr(stream), redirect_stdout(stream):
        module.Parallel(n_jobs=2, backend=backend, verbose=verbose)(
            module.delayed(task)(i, "ok") for i in range(n_tasks)
        )
    lines = _TIMING.sub("<t>", stream.getvalue()).splitlines()
    # Intermediate lines depend on batch timing, in joblib too (under load it
    # may print "Done 1 out of 1 ... finished" before the iterator is
    # exhausted): compare the backend line and the last "finished" line.
    for line in lines:
        assert _LINE.fullmatch(line), f"{module.__name__}: {line!r}"
    using = [line for line in lines if "Using backend" in line]
    finished = [line for line in lines if "finished" in line]
    return using + finished[-1:]


# Every line joblib's verbose mode prints, timings replaced by <t>.
_LINE = re.compile(
    r"\[Parallel\(n_jobs=2\)\]: (Using backend \w+ with \d+ concurrent workers\."
    r"|Done +\d+ (tasks +|out of +\d+ )\| elapsed: +<t>( finished| remaining: +<t>)?"
    r"|Batch computation too (fast|slow) \(<t>\.\) Setting batch_size=\d+\.)"
)


@pytest.mark.parametrize("backend", ["threading", "sequential", "loky"])
@pytest.mark.parametrize("verbose", [1, 10, 50])
def test_verbose_lines_agree_modulo_timings(backend, verbose):
    ours = _verbose_lines(para_joblib, backend, 10, verbose)
    theirs = _verbose_lines(joblib, backend, 10, verbose)
    assert ours == theirs
    assert any("finished" in line for line in theirs)


def test_generator_results_come_in_order_and_lazily():
    gen = para_joblib.Parallel(n_jobs=2, return_as="generator")(
        para_joblib.delayed(task)(i, "ok") for i in range(20)
    )
    assert next(gen) == task(0, "ok")
    assert list(gen) == [task(i, "ok") for i in range(1, 20)]


def slow(x):
    import time

    time.sleep(x)
    return x


def nested(i):
    # An inner Parallel inside a worker, as joblib's nesting rules allow.
    import para_joblib as inner

    return sum(inner.Parallel(n_jobs=2)(inner.delayed(abs)(-j) for j in range(i)))


def nested_joblib(i):
    import joblib as inner

    return sum(inner.Parallel(n_jobs=2)(inner.delayed(abs)(-j) for j in range(i)))


@pytest.mark.parametrize("backend", ["loky", "threading", "multiprocessing"])
def test_timeout_raises_the_same_type(backend):
    def attempt(module):
        try:
            module.Parallel(n_jobs=2, backend=backend, timeout=0.2)(
                module.delayed(slow)(x) for x in (0.0, 1.5, 0.0)
            )
        except multiprocessing.TimeoutError as exc:
            # joblib's class, which code written for joblib catches
            return "multiprocessing.TimeoutError", type(exc).__name__
        except Exception as exc:
            return "other", type(exc).__name__
        return None

    theirs = attempt(joblib)
    assert theirs == ("multiprocessing.TimeoutError", "TimeoutError")
    assert attempt(para_joblib)[0] == theirs[0]


@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_nested_parallel_agrees(backend):
    ours = para_joblib.Parallel(n_jobs=2, backend=backend)(
        para_joblib.delayed(nested)(i) for i in range(6)
    )
    theirs = joblib.Parallel(n_jobs=2, backend=backend)(
        joblib.delayed(nested_joblib)(i) for i in range(6)
    )
    assert ours == theirs == [sum(range(i)) for i in range(6)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pre_dispatch": "all"},
        {"pre_dispatch": 3},
        {"pre_dispatch": "n_jobs"},
        {"batch_size": 4},
        {"batch_size": 1},
        {"prefer": "threads"},
        {"require": "sharedmem"},
        {"prefer": "processes", "batch_size": "auto"},
    ],
    ids=repr,
)
def test_dispatch_options_agree(kwargs):
    def go(module):
        try:
            return module.Parallel(n_jobs=2, **kwargs)(
                module.delayed(task)(i, "ok") for i in range(30)
            )
        except Exception as exc:
            return type(exc).__name__

    assert go(para_joblib) == go(joblib) == [task(i, "ok") for i in range(30)]


@pytest.mark.parametrize("return_as", RETURN_AS)
def test_explicit_backend_none_means_the_default(return_as):
    # scikit-learn and others pass backend=None explicitly.
    ours = run(para_joblib, None, return_as, range(10), "ok")
    theirs = run(joblib, None, return_as, range(10), "ok")
    assert ours == theirs


@pytest.mark.parametrize("backend", ["loky", "threading", "sequential"])
def test_generator_raises_the_task_error_after_a_prefix(backend):
    # How many results come out before the error depends on timing in joblib
    # too: compare the error and that what came out is a prefix, in order.
    def consume(module):
        got = []
        gen = module.Parallel(n_jobs=2, backend=backend, return_as="generator")(
            module.delayed(task)(x, "raise-value") for x in range(10)
        )
        try:
            for item in gen:
                got.append(item)
        except ValueError:
            return got, "ValueError"
        return got, None

    expected = [task(x, "ok") for x in range(3)]  # task 3 raises
    for module in (para_joblib, joblib):
        got, error = consume(module)
        assert error == "ValueError"
        assert got == expected[: len(got)]


def test_reusing_a_parallel_context_agrees():
    results = {}
    for module in (para_joblib, joblib):
        with module.Parallel(n_jobs=2) as parallel:
            first = parallel(module.delayed(task)(i, "ok") for i in range(5))
            second = parallel(module.delayed(task)(i, "ok") for i in range(5, 9))
        results[module.__name__] = first + second
    assert results["para_joblib"] == results["joblib"]


@pytest.mark.parametrize("backend", [None, *BACKENDS])
@pytest.mark.parametrize("config_n_jobs", [None, 2, -1])
@pytest.mark.parametrize(
    "hint", [{}, {"prefer": "threads"}, {"require": "sharedmem"}], ids=str
)
def test_unset_n_jobs_follows_parallel_config(backend, config_n_jobs, hint):
    # n_jobs=None is "unset" in joblib: the value of the enclosing
    # parallel_config, except when prefer/require forced threads (then 1).
    def seen(module, where):
        config = {} if config_n_jobs is None else {"n_jobs": config_n_jobs}
        if where == "config" and backend is not None:
            config["backend"] = backend
        given = {"backend": backend} if where == "parallel" else {}
        try:
            with module.parallel_config(**config):
                par = module.Parallel(n_jobs=None, **given, **hint)
                with par:
                    kind = type(par._backend).__name__
                    out = par(module.delayed(abs)(-i) for i in range(3))
                return par.n_jobs, kind, out
        except ValueError:
            return "ValueError"

    for where in ("parallel", "config"):
        assert seen(para_joblib, where) == seen(joblib, where), where


@pytest.mark.parametrize(
    ("config", "given"),
    [
        ({}, {"prefer": "processes", "require": "sharedmem"}),
        ({"prefer": "processes", "require": "sharedmem"}, {}),
        ({"prefer": "processes"}, {"require": "sharedmem"}),
        ({"require": "sharedmem"}, {"prefer": "processes"}),
        ({"prefer": "processes", "require": "sharedmem"}, {"prefer": "threads"}),
    ],
)
def test_contradicting_prefer_and_require_agree(config, given):
    def attempt(module):
        try:
            with module.parallel_config(**config):
                par = module.Parallel(n_jobs=2, **given)
                return "ok", par(module.delayed(abs)(-i) for i in range(3))
        except ValueError as exc:
            return "ValueError", str(exc)

    assert attempt(para_joblib) == attempt(joblib)


def test_dask_backend_without_dask_agrees(monkeypatch):
    import sys

    from joblib import parallel as joblib_parallel

    monkeypatch.delitem(joblib_parallel.BACKENDS, "dask", raising=False)
    # para_core keeps "dask" registered as a lazy factory of its module.
    for name in (
        "joblib._dask",
        "para_core.backends._dask",
        "para_core.backends._dask_tasks",
    ):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in ("dask", "distributed", "dask.distributed"):
        monkeypatch.setitem(sys.modules, name, None)  # cannot be imported

    def attempt(make):
        try:
            make()
        except Exception as exc:
            return type(exc), str(exc)
        return None

    theirs = attempt(lambda: joblib.parallel_config(backend="dask"))
    ours = attempt(lambda: para_joblib.parallel_config(backend="dask"))
    assert theirs[0] is ours[0] is ValueError
    assert ours[1].startswith(theirs[1].rstrip("."))  # and how to install it
    # joblib's Parallel refuses the name too (a ValueError, with other words)
    assert attempt(lambda: joblib.Parallel(backend="dask"))[0] is ValueError
    assert attempt(lambda: para_joblib.Parallel(backend="dask"))[0] is ValueError


def set_env_var(name, value):
    import os

    os.environ[name] = value


def env_var(name):
    import os

    return os.environ.get(name)


@pytest.mark.parametrize("backend", ["multiprocessing", "loky"])
def test_worker_initializer_agrees(backend):
    def run_with(module):
        init = {
            "initializer": set_env_var,
            "initargs": ("PARA_DIFF_INIT", module.__name__),
        }
        with module.parallel_config(backend=backend, **init):
            from_config = module.Parallel(n_jobs=2)(
                module.delayed(env_var)("PARA_DIFF_INIT") for _ in range(4)
            )
        direct = module.Parallel(n_jobs=2, backend=backend, **init)(
            module.delayed(env_var)("PARA_DIFF_INIT") for _ in range(4)
        )
        return from_config, direct

    assert run_with(para_joblib) == (["para_joblib"] * 4, ["para_joblib"] * 4)
    assert run_with(joblib) == (["joblib"] * 4, ["joblib"] * 4)


def is_memmap(a):
    import numpy as np

    return isinstance(a, np.memmap), float(a.sum())


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
@pytest.mark.parametrize("max_nbytes", [1e3, 4e3, 1e6, "1K", 1000, None])
def test_max_nbytes_numbers_agree(backend, max_nbytes):
    # joblib's user guide passes 1e6: floats are sizes like ints.
    import numpy as np

    arrays = [np.ones(n) for n in (100, 700)]  # 800 and 5600 bytes

    def shared(module):
        return module.Parallel(n_jobs=2, backend=backend, max_nbytes=max_nbytes)(
            module.delayed(is_memmap)(a) for a in arrays
        )

    assert shared(para_joblib) == shared(joblib)


# A fresh interpreter where _multiprocessing cannot be imported (Pyodide, some
# serverless runtimes): what each call does, as JSON.
_NO_MULTIPROCESSING = r"""
import importlib, importlib.abc, json, sys, warnings

class NoMultiprocessing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "_multiprocessing":
            raise ImportError("No module named '_multiprocessing'")

sys.meta_path.insert(0, NoMultiprocessing())
module = importlib.import_module(sys.argv[1])
report = {"cpu_count": module.cpu_count(), "effective": module.effective_n_jobs(-1)}
for kwargs in [{"n_jobs": 1}, {"n_jobs": 2}, {"n_jobs": -1}, {"backend": "loky"},
               {"n_jobs": 2, "backend": "multiprocessing"},
               {"n_jobs": 2, "backend": "threading"}]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        par = module.Parallel(**kwargs)
        out = par(module.delayed(abs)(-i) for i in range(5))
    report[json.dumps(kwargs)] = [
        type(par._backend).__name__, par.n_jobs, out, [str(w.message) for w in caught]
    ]
print(json.dumps(report))
"""


def test_without_multiprocessing_module_agrees():
    # para_core is what must stand there (para_joblib also needs para-memmap,
    # whose MemmappingPool imports multiprocessing.pool).
    import json
    import subprocess
    import sys

    def report(module):
        out = subprocess.run(
            [sys.executable, "-c", _NO_MULTIPROCESSING, module],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    assert report("para_core") == report("joblib")


def _count_with_replaced_callback(lib, backend, return_as, n):
    """The "tqdm_joblib" recipe, with a counter in place of the bar."""
    parallel_module = lib.parallel
    done = []

    class Counting(parallel_module.BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            done.append(self.batch_size)
            return super().__call__(*args, **kwargs)

    original = parallel_module.BatchCompletionCallBack
    parallel_module.BatchCompletionCallBack = Counting
    try:
        n_jobs = 1 if backend == "sequential" else 2
        out = lib.Parallel(n_jobs=n_jobs, backend=backend, return_as=return_as)(
            lib.delayed(task)(i, "ok") for i in range(n)
        )
        out = list(out)
    finally:
        parallel_module.BatchCompletionCallBack = original
    assert parallel_module.BatchCompletionCallBack is original
    return sorted(out), sum(done)


@pytest.mark.parametrize("return_as", RETURN_AS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_replaced_batch_completion_callback_counts_every_task(backend, return_as):
    n = 300
    para_out, para_count = _count_with_replaced_callback(
        para_joblib, backend, return_as, n
    )
    assert para_count == n
    if backend == "multiprocessing" and return_as != "list":
        return  # joblib refuses generators there; para runs them
    jl_out, jl_count = _count_with_replaced_callback(joblib, backend, return_as, n)
    assert para_out == jl_out
    if backend == "sequential":
        # joblib runs n_jobs=1 without batches and never calls the callback;
        # para calls it after each task (see the page 'Migrating from joblib').
        assert jl_count == 0
    else:
        assert para_count == jl_count
