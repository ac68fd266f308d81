"""Parallel semantics: arguments, results, return_as, batching, context use."""

from __future__ import annotations

import gc
import inspect
import subprocess
import sys
import threading
import weakref

import pytest
from _helpers import getpid, identity, square
from hypothesis import given, settings
from hypothesis import strategies as st

import para_core
from para_core import (
    MultiprocessingBackend,
    Parallel,
    cpu_count,
    delayed,
    effective_n_jobs,
    get_active_backend,
    parallel_backend,
    parallel_config,
    register_parallel_backend,
)
from para_core._errors import eval_expr, memstr_to_bytes, parse_max_nbytes

JOBLIB_PARALLEL_SIGNATURE = (
    "(n_jobs=default(None), backend=default(None), return_as='list', "
    "verbose=default(0), timeout=None, pre_dispatch='2 * n_jobs', "
    "batch_size='auto', temp_folder=default(None), max_nbytes=default('1M'), "
    "mmap_mode=default('r'), prefer=default(None), require=default(None), "
    "**backend_kwargs)"
)
JOBLIB_CONFIG_SIGNATURE = (
    "(backend=default(None), *, n_jobs=default(None), verbose=default(0), "
    "temp_folder=default(None), max_nbytes=default('1M'), "
    "mmap_mode=default('r'), prefer=default(None), require=default(None), "
    "inner_max_num_threads=None, **backend_params)"
)


def _strip_annotations(sig: inspect.Signature) -> str:
    params = [
        p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()
    ]
    return str(
        sig.replace(parameters=params, return_annotation=inspect.Signature.empty)
    )


def test_signatures_match_joblib():
    assert _strip_annotations(inspect.signature(Parallel)) == JOBLIB_PARALLEL_SIGNATURE
    assert (
        _strip_annotations(inspect.signature(parallel_config))
        == JOBLIB_CONFIG_SIGNATURE
    )


BACKENDS = ["sequential", "threading", "loky", "multiprocessing"]
MODES = ["list", "generator", "generator_unordered"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("return_as", MODES)
def test_results_every_backend_and_mode(backend, return_as):
    out = Parallel(n_jobs=2, backend=backend, return_as=return_as)(
        delayed(square)(i) for i in range(50)
    )
    expected = [i * i for i in range(50)]
    if return_as == "list":
        assert out == expected
    elif return_as == "generator":
        assert inspect.isgenerator(out)
        assert list(out) == expected
    else:
        assert sorted(out) == expected


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(), max_size=60),
    st.sampled_from(["sequential", "threading"]),
    st.one_of(st.just("auto"), st.integers(1, 7)),
    st.sampled_from(MODES),
)
def test_results_property(values, backend, batch_size, return_as):
    out = list(
        Parallel(n_jobs=3, backend=backend, batch_size=batch_size, return_as=return_as)(
            delayed(identity)(v) for v in values
        )
    )
    if return_as == "generator_unordered":
        assert sorted(out) == sorted(values)
    else:
        assert out == values


def test_kwargs_and_delayed_metadata():
    d = delayed(square)
    assert d.__name__ == "square"
    assert d.__wrapped__ is square
    assert d(3) == (square, (3,), {})
    assert delayed(pow)(2, exp=3) == (pow, (2,), {"exp": 3})
    out = Parallel(n_jobs=2, backend="threading")(
        delayed(pow)(2, exp=i) for i in range(4)
    )
    assert out == [1, 2, 4, 8]


@pytest.mark.parametrize("n_jobs", [0, 0.5])
def test_n_jobs_zero_is_an_error(n_jobs):
    with pytest.raises(ValueError, match="n_jobs == 0"):
        Parallel(n_jobs=n_jobs)(delayed(square)(i) for i in range(2))


def test_n_jobs_rules():
    with pytest.raises(ValueError, match=r"n_jobs could not be converted to int.*'a'"):
        Parallel(n_jobs="a")
    assert Parallel(n_jobs=2.7).n_jobs == 2
    assert effective_n_jobs(-1) == cpu_count()
    assert effective_n_jobs(-100) == 1
    assert effective_n_jobs(1) == 1
    with parallel_config(backend="threading"):
        assert effective_n_jobs(-2) == max(cpu_count() - 1, 1)
    assert Parallel(n_jobs=-1, backend="threading")(
        delayed(square)(i) for i in range(3)
    ) == [0, 1, 4]
    # None: the configured value, else one worker
    with parallel_config(n_jobs=3):
        assert Parallel().n_jobs == 3
    assert Parallel().n_jobs == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"return_as": "tuple"}, "return_as.*tuple"),
        ({"batch_size": 0}, "batch_size must be 'auto' or a positive integer, got: 0"),
        ({"batch_size": "big"}, "got: 'big'"),
        ({"backend": "nope"}, "Invalid backend: nope, expected one of"),
        ({"prefer": "gpu"}, "prefer=gpu is not a valid backend hint"),
        ({"require": "x"}, "require=x is not a valid backend constraint"),
        ({"max_nbytes": "12Q"}, "12Q"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Parallel(n_jobs=2, **kwargs)(delayed(square)(i) for i in range(2))


def test_bad_pre_dispatch():
    with pytest.raises(ValueError, match="'x\\*2' is not a valid"):
        Parallel(n_jobs=2, backend="threading", pre_dispatch="x*2")(
            delayed(square)(i) for i in range(2)
        )


def test_eval_expr_is_safe():
    assert eval_expr("2 * n_jobs", {"n_jobs": 3}) == 6
    assert eval_expr("1 + 2*3**(4) / (6 + -7)") == -161.0
    for bad in ["__import__('os')", "a.b", "[1]", "f(1)", "9**9**9", "1/0"]:
        with pytest.raises(ValueError):
            eval_expr(bad)


def test_max_nbytes_parsing():
    assert memstr_to_bytes("1M") == 1024**2
    assert memstr_to_bytes("100K") == 100 * 1024
    assert memstr_to_bytes("1G") == 1024**3
    assert parse_max_nbytes(None) is None
    assert parse_max_nbytes(10) == 10
    for bad in ["1Q", "M", "", "x1K"]:
        with pytest.raises(ValueError, match="Invalid literal for size"):
            parse_max_nbytes(bad)
    # Numbers as joblib takes them (its user guide writes 1e6).
    assert parse_max_nbytes(1e6) == 1_000_000
    assert type(parse_max_nbytes(1e6)) is int
    assert parse_max_nbytes(1.5) == 2  # arrays of more than 1.5 bytes
    assert parse_max_nbytes(0.0) == 0
    assert parse_max_nbytes(float("inf")) is None
    for bad in [-1, -0.5, float("nan"), True, [1], b"1M"]:
        with pytest.raises(ValueError, match="max_nbytes"):
            parse_max_nbytes(bad)
    assert Parallel(n_jobs=2, max_nbytes=1e6).max_nbytes == 1_000_000
    with parallel_config(max_nbytes=2e3):
        assert Parallel(n_jobs=2).max_nbytes == 2000


def test_pre_dispatch_consumes_input_lazily():
    consumed = []

    def tasks():
        for i in range(100):
            consumed.append(i)
            yield delayed(square)(i)

    gen = Parallel(
        n_jobs=2,
        backend="threading",
        return_as="generator",
        batch_size=1,
        pre_dispatch=3,
    )(tasks())
    assert next(gen) == 0
    assert len(consumed) < 10
    assert list(gen) == [i * i for i in range(1, 100)]
    assert len(consumed) == 100


def test_pre_dispatch_all_and_int():
    for pre in ("all", 1, "n_jobs"):
        out = Parallel(n_jobs=2, backend="threading", pre_dispatch=pre)(
            delayed(square)(i) for i in range(30)
        )
        assert out == [i * i for i in range(30)]


class Blob:
    def __init__(self, i):
        self.i = i


def make_blob(i):
    return Blob(i)


def test_generator_releases_consumed_results():
    gen = Parallel(n_jobs=2, backend="threading", return_as="generator", batch_size=1)(
        delayed(make_blob)(i) for i in range(20)
    )
    first = next(gen)
    ref = weakref.ref(first)
    del first
    next(gen)
    gc.collect()
    assert ref() is None
    gen.close()


def test_context_manager_reuses_workers(no_leftovers):
    with Parallel(n_jobs=2) as par:
        a = set(par(delayed(getpid)() for _ in range(20)))
        b = set(par(delayed(getpid)() for _ in range(20)))
    # one pool of two workers served both calls
    assert len(a | b) <= 2


def test_reentrant_call_raises():
    par = Parallel(n_jobs=2, backend="threading", return_as="generator")
    gen = par(delayed(square)(i) for i in range(10))
    with pytest.raises(RuntimeError, match="already running"):
        par(delayed(square)(i) for i in range(10))
    assert list(gen) == [i * i for i in range(10)]
    assert list(par(delayed(square)(i) for i in range(3))) == [0, 1, 4]


def test_dropping_generator_halfway_is_clean(no_leftovers):
    errors = []
    old_hook, old_unraisable = threading.excepthook, sys.unraisablehook
    threading.excepthook = errors.append
    sys.unraisablehook = errors.append
    try:
        par = Parallel(n_jobs=2, return_as="generator", batch_size=2)
        gen = par(delayed(square)(i) for i in range(10_000))
        assert [next(gen) for _ in range(5)] == [0, 1, 4, 9, 16]
        del gen
        gc.collect()
        assert list(par(delayed(square)(i) for i in range(3))) == [0, 1, 4]
        out = Parallel(n_jobs=2, return_as="generator_unordered")(
            delayed(square)(i) for i in range(1000)
        )
        next(out)
        out.close()
        gc.collect()
    finally:
        threading.excepthook, sys.unraisablehook = old_hook, old_unraisable
    assert errors == []


def test_import_is_light_and_free_of_side_effects():
    code = (
        "import sys, threading\n"
        "n = threading.active_count()\n"
        "import para_core\n"
        "assert threading.active_count() == n\n"
        "assert 'numpy' not in sys.modules\n"
        "from para_core import Parallel, delayed\n"
        "out = Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4))\n"
        "assert out == [0, 1, 2, 3]\n"
        "assert 'numpy' not in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_cloudpickle_for_interactive_functions(no_leftovers):
    offset = 10
    out = Parallel(n_jobs=2)(delayed(lambda x: x + offset)(i) for i in range(5))
    assert out == [10, 11, 12, 13, 14]


def test_generator_unordered_yields_in_completion_order():
    gate = threading.Event()

    def task(i):
        if i == 0:
            assert gate.wait(30)
        return i

    gen = Parallel(
        n_jobs=2, backend="threading", return_as="generator_unordered", batch_size=1
    )(delayed(task)(i) for i in range(6))
    first = next(gen)
    assert first != 0
    gate.set()
    assert sorted([first, *gen]) == list(range(6))


def test_backend_none_means_the_configured_default():
    with parallel_config(backend="threading"):
        par = Parallel(n_jobs=2, backend=None)
        assert type(par._backend).__name__ == "ThreadingBackend"


def test_multiprocessing_context_is_recorded(no_leftovers):
    import multiprocessing

    # joblib keeps the pool's context in _backend_kwargs: the default one, or
    # the context given as backend; the pool is then started with it.
    p = Parallel(n_jobs=2, backend="multiprocessing")
    assert p._backend_kwargs["context"].get_start_method() == (
        multiprocessing.get_start_method()
    )
    spawn = multiprocessing.get_context("spawn")
    p = Parallel(n_jobs=2, backend=spawn)
    assert p._backend_kwargs["context"] is spawn
    assert p(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert "context" not in Parallel(n_jobs=2, backend="threading")._backend_kwargs


class _PlainSubclass(MultiprocessingBackend):
    """Holds nothing but its arguments, and says so (as para_joblib's)."""

    _para_private_copy = True


class _StatefulSubclass(_PlainSubclass):
    """Keeps state its caller reads (as joblib's test backends do)."""

    calls = 0

    def start_call(self):
        super().start_call()
        self.calls += 1


@pytest.fixture
def multiprocessing_registered():
    # Restores the built-in backend registered as "multiprocessing".
    before = para_core.BACKENDS["multiprocessing"]
    yield
    register_parallel_backend("multiprocessing", before)


def test_configured_backend_is_private_to_each_parallel(
    multiprocessing_registered, no_leftovers
):
    # Concurrent calls under one parallel_config must not share the pool
    # state of one backend instance: each Parallel gets its own, when a new
    # one equal to the configured one can be made.
    for name in ["loky", "threading"]:
        with parallel_config(backend=name):
            active = get_active_backend()[0]
            first, second = Parallel(n_jobs=2)._backend, Parallel(n_jobs=2)._backend
            assert first is not active and first is not second
            assert type(first) is type(second) is type(active)
    register_parallel_backend("multiprocessing", _PlainSubclass)
    with parallel_config(backend="multiprocessing", n_jobs=2, maxtasksperchild=5):
        active = get_active_backend()[0]
        mine = Parallel()._backend
        assert type(mine) is _PlainSubclass and mine is not active
        assert mine.backend_kwargs == {"maxtasksperchild": 5}
    # A subclass does not inherit the promise: its instance is used as given
    # and keeps what its methods record.
    stateful = _StatefulSubclass()
    with parallel_config(backend=stateful):
        par = Parallel(n_jobs=2)
        assert par._backend is stateful
    assert par(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert stateful.calls == 1


def test_context_as_backend_uses_the_registered_class(
    multiprocessing_registered, no_leftovers
):
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    assert type(Parallel(n_jobs=2, backend=spawn)._backend) is MultiprocessingBackend
    register_parallel_backend("multiprocessing", _PlainSubclass)
    par = Parallel(n_jobs=2, backend=spawn)
    assert type(par._backend) is _PlainSubclass
    assert par(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    # Not a multiprocessing backend under that name: para-core's own class.
    register_parallel_backend("multiprocessing", para_core.BACKENDS["threading"])
    assert type(Parallel(n_jobs=2, backend=spawn)._backend) is MultiprocessingBackend


def _nested_n_jobs():
    return Parallel()._effective_n_jobs()


@pytest.mark.parametrize("backend", ["multiprocessing", "loky", "threading"])
def test_nested_calls_do_not_inherit_parallel_backend_n_jobs(backend, no_leftovers):
    # parallel_backend sets n_jobs=-1; a task's own Parallel() uses the nested
    # backend's default (one worker), also in a forked worker, which inherits
    # the caller's configuration.
    with parallel_backend(backend):
        assert Parallel(n_jobs=2)(delayed(_nested_n_jobs)() for _ in range(2)) == [
            1,
            1,
        ]
