"""Configuration, backend selection, nesting and third-party backends."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool

import pytest
from _helpers import (
    env_var,
    identity,
    nested_backend_name,
    nested_explicit_loky,
    set_env_var,
    square,
)

import para_core
from para_core import (
    LokyBackend,
    MultiprocessingBackend,
    Parallel,
    ParallelBackendBase,
    ThreadingBackend,
    delayed,
    get_active_backend,
    parallel_backend,
    parallel_config,
    register_parallel_backend,
    wrap_non_picklable_objects,
)


def test_parallel_config_is_nestable_and_restored():
    assert type(get_active_backend()[0]).__name__ == "LokyBackend"
    with parallel_config(backend="threading", n_jobs=3, verbose=0) as cfg:
        assert cfg["n_jobs"] == 3
        backend, n_jobs = get_active_backend()
        assert isinstance(backend, ThreadingBackend) and n_jobs == 3
        with parallel_config(n_jobs=2):
            backend2, n2 = get_active_backend()
            assert isinstance(backend2, ThreadingBackend) and n2 == 2
        assert get_active_backend()[1] == 3
    assert get_active_backend()[1] is None
    assert type(get_active_backend()[0]).__name__ == "LokyBackend"


_FIRST_USE = """
import para_core
{before}
with para_core.parallel_config(backend={backend!r}, n_jobs=2):
    print(para_core.Parallel()(para_core.delayed(abs)(-i) for i in range(3)))
"""


@pytest.mark.parametrize("backend", ["threading", "sequential", "loky"])
@pytest.mark.parametrize(
    "before",
    [
        "",
        # a third-party backend registered first (its base class only)
        "class Mine(para_core.ParallelBackendBase):\n"
        "    def effective_n_jobs(self, n_jobs):\n"
        "        return 1\n"
        "para_core.register_parallel_backend('mine', Mine)",
    ],
    ids=["nothing", "registered"],
)
def test_parallel_config_names_a_backend_before_anything_else(backend, before):
    # A fresh interpreter whose first use of para_core is parallel_config:
    # the built-in backends must be known by then.
    code = _FIRST_USE.format(backend=backend, before=before)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0, 1, 2]"


def test_parallel_config_is_thread_local():
    seen = []
    with parallel_config(backend="threading"):
        t = threading.Thread(target=lambda: seen.append(get_active_backend()[0]))
        t.start()
        t.join()
    assert type(seen[0]).__name__ == "LokyBackend"


def test_parallel_config_errors():
    with pytest.raises(ValueError, match="Invalid backend: nope"):
        parallel_config(backend="nope")
    with pytest.raises(ValueError, match="only supported when backend is not None"):
        parallel_config(inner_max_num_threads=2)
    with pytest.raises(ValueError, match="only supported when backend is a string"):
        parallel_config(backend=ThreadingBackend(), foo=1)
    with pytest.raises(ValueError, match="prefer=x"):
        parallel_config(prefer="x")


def test_legacy_parallel_backend():
    with parallel_backend("threading", n_jobs=2) as (backend, n_jobs):
        assert isinstance(backend, ThreadingBackend) and n_jobs == 2
        assert Parallel()(delayed(square)(i) for i in range(3)) == [0, 1, 4]


def test_prefer_and_require():
    assert isinstance(Parallel(prefer="threads")._backend, ThreadingBackend)
    assert isinstance(Parallel(require="sharedmem")._backend, ThreadingBackend)
    with parallel_config(prefer="threads"):
        assert isinstance(Parallel()._backend, ThreadingBackend)
    # An explicit backend wins over the soft hint...
    assert type(Parallel(backend="loky", prefer="threads")._backend).__name__ == (
        "LokyBackend"
    )
    # ...but not over the hard constraint.
    with pytest.raises(ValueError, match="does not support shared memory"):
        Parallel(backend="loky", require="sharedmem")
    shared = []
    Parallel(n_jobs=2, require="sharedmem")(delayed(shared.append)(i) for i in range(5))
    assert sorted(shared) == list(range(5))


@pytest.mark.parametrize(
    ("backend", "workers"),
    [("loky", 2), ("multiprocessing", 2), ("threading", 2), ("sequential", 1)],
)
@pytest.mark.parametrize("where", ["parallel", "config"])
def test_n_jobs_none_means_the_configured_value(backend, workers, where, no_leftovers):
    # None is joblib's "unset": the enclosing parallel_config's n_jobs.
    in_config = {"backend": backend} if where == "config" else {}
    in_parallel = {"backend": backend} if where == "parallel" else {}
    with parallel_config(n_jobs=2, **in_config):
        par = Parallel(n_jobs=None, **in_parallel)
        assert par.n_jobs == 2
        with par:
            assert par._n_jobs_resolved == workers
            assert par(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]
        assert get_active_backend()[1] == 2
    assert Parallel(n_jobs=None).n_jobs == 1


def test_threads_forced_by_prefer_or_require_default_to_one_job():
    # As joblib: when prefer/require replace the configured process backend
    # by threads, an unset n_jobs is 1, not the configured value.
    with parallel_config(n_jobs=2):
        for hint in ({"prefer": "threads"}, {"require": "sharedmem"}):
            par = Parallel(**hint)
            assert isinstance(par._backend, ThreadingBackend)
            assert par.n_jobs == 1
            assert get_active_backend(**hint)[1] == 1
            assert Parallel(n_jobs=2, **hint).n_jobs == 2
    with parallel_config(backend="threading", n_jobs=3):
        assert Parallel(require="sharedmem").n_jobs == 3  # threads chosen anyway


def test_prefer_processes_and_require_sharedmem_contradict(capsys):
    msg = "prefer == 'processes' and require == 'sharedmem' are inconsistent"
    with pytest.raises(ValueError, match=msg):
        Parallel(prefer="processes", require="sharedmem")
    # From parallel_config too, once Parallel reads it (as joblib).
    with parallel_config(prefer="processes", require="sharedmem"):
        with pytest.raises(ValueError, match=msg):
            Parallel()
        with pytest.raises(ValueError, match=msg):
            get_active_backend()
        assert isinstance(Parallel(prefer="threads")._backend, ThreadingBackend)
    with parallel_config(prefer="processes"):
        with pytest.raises(ValueError, match=msg):
            Parallel(require="sharedmem")
    # Threads replacing an explicit backend are announced from verbose=10.
    with parallel_config(backend="loky"):
        Parallel(require="sharedmem", verbose=5)
        assert capsys.readouterr().out == ""
        Parallel(require="sharedmem", verbose=10)
        assert "Using ThreadingBackend" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["multiprocessing", "loky"])
@pytest.mark.parametrize("where", ["parallel", "config"])
def test_worker_initializer_runs_in_each_worker(backend, where, no_leftovers):
    init = {"initializer": set_env_var, "initargs": ("PARA_TEST_INIT", "ran")}
    tasks = [delayed(env_var)(name) for name in ["PARA_TEST_INIT", "OMP_NUM_THREADS"]]
    if where == "parallel":
        out = Parallel(n_jobs=2, backend=backend, **init)(tasks * 4)
    else:
        with parallel_config(backend=backend, **init):
            out = Parallel(n_jobs=2)(tasks * 4)
    # The user's initializer ran, and so did ours (thread caps).
    assert out[::2] == ["ran"] * 4
    assert all(value is not None for value in out[1::2])


def test_nested_calls_do_not_oversubscribe(no_leftovers):
    out = Parallel(n_jobs=2)(delayed(nested_backend_name)(i) for i in range(2))
    for name, level, inner in out:
        assert name == "ThreadingBackend"
        assert level == 1
        assert inner == [0, 1, 4]
    out = Parallel(n_jobs=2, backend="threading")(
        delayed(nested_backend_name)(i) for i in range(2)
    )
    assert {name for name, _, _ in out} == {"ThreadingBackend"}
    assert {level for _, level, _ in out} == {1}


def test_inner_max_num_threads_reaches_workers(no_leftovers):
    with parallel_config(backend="loky", inner_max_num_threads=1):
        out = Parallel(n_jobs=2)(delayed(env_var)("OMP_NUM_THREADS") for _ in range(2))
    assert out == ["1", "1"]
    out = Parallel(n_jobs=2, backend="multiprocessing")(
        delayed(env_var)("MKL_NUM_THREADS") for _ in range(2)
    )
    assert len(set(out)) == 1 and int(out[0]) >= 1


class FuturesBackend(ParallelBackendBase):
    """A third-party backend written against joblib's documented API only."""

    supports_retrieve_callback = True
    uses_threads = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = []

    def effective_n_jobs(self, n_jobs):
        return 2 if n_jobs in (None, -1) else n_jobs

    def configure(self, n_jobs=1, parallel=None, **backend_kwargs):
        self.parallel = parallel
        self.calls.append("configure")
        self._pool = ThreadPoolExecutor(self.effective_n_jobs(n_jobs))
        return self.effective_n_jobs(n_jobs)

    def start_call(self):
        self.calls.append("start_call")

    def stop_call(self):
        self.calls.append("stop_call")

    def submit(self, func, callback=None):
        future = self._pool.submit(func)
        future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, out):
        return out.result()

    def terminate(self):
        self.calls.append("terminate")
        self._pool.shutdown()


class PollingBackend(ParallelBackendBase):
    """An older style backend: no callbacks, results are polled."""

    supports_retrieve_callback = False

    def effective_n_jobs(self, n_jobs):
        return 2

    def configure(self, n_jobs=1, parallel=None, **backend_kwargs):
        self.parallel = parallel
        self._pool = ThreadPool(2)
        return 2

    def submit(self, func, callback=None):
        return self._pool.apply_async(func)

    def terminate(self):
        self._pool.terminate()
        self._pool.join()


@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
def test_third_party_backend(return_as):
    backend = FuturesBackend()
    out = list(
        Parallel(n_jobs=2, backend=backend, return_as=return_as)(
            delayed(square)(i) for i in range(40)
        )
    )
    assert sorted(out) == [i * i for i in range(40)]
    assert backend.calls == ["configure", "start_call", "stop_call", "terminate"]


def test_third_party_backend_registered_and_default():
    register_parallel_backend("futures-test", FuturesBackend)
    try:
        assert Parallel(n_jobs=2, backend="futures-test")(
            delayed(square)(i) for i in range(4)
        ) == [0, 1, 4, 9]
        with parallel_config(backend="futures-test"):
            assert isinstance(Parallel()._backend, FuturesBackend)
        register_parallel_backend("futures-test", FuturesBackend, make_default=True)
        assert isinstance(get_active_backend()[0], FuturesBackend)
    finally:
        from para_core import _registry

        _registry.DEFAULT_BACKEND = "loky"
        _registry.BACKENDS.pop("futures-test", None)


def test_polling_backend():
    assert Parallel(backend=PollingBackend())(delayed(square)(i) for i in range(9)) == [
        i * i for i in range(9)
    ]


@pytest.mark.parametrize(
    "use",
    [
        lambda: Parallel(backend="dask"),
        lambda: parallel_config(backend="dask"),
        lambda: parallel_backend("dask"),
    ],
    ids=["Parallel", "parallel_config", "parallel_backend"],
)
def test_dask_backend_missing_gives_install_hint(monkeypatch, use):
    from para_core import _registry

    # dask and distributed cannot be imported (None in sys.modules), and our
    # backend module was not imported yet.
    for name in ("para_core.backends._dask", "para_core.backends._dask_tasks"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    for name in ("dask", "distributed", "dask.distributed"):
        monkeypatch.setitem(sys.modules, name, None)
    # joblib's ValueError and text, and how to install it.
    with pytest.raises(ValueError, match="but dask is not installed") as info:
        use()
    assert "pip install para-core[dask]" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
    # The name stays registered lazily: installing dask later is enough.
    assert "para_core.backends._dask" not in sys.modules
    assert _registry.BACKENDS["dask"] is _registry._BUILTIN["dask"]


def test_wrap_non_picklable_objects(no_leftovers):
    square_w = wrap_non_picklable_objects(lambda x: x * x)
    assert square_w(4) == 16
    assert Parallel(n_jobs=2)(delayed(square_w)(i) for i in range(4)) == [0, 1, 4, 9]
    with pytest.raises(TypeError, match="function or a class"):
        wrap_non_picklable_objects(3)


def test_public_names():
    for name in para_core.__all__:
        assert hasattr(para_core, name), name
    assert para_core.__version__


def test_explicit_loky_inside_loky_worker(no_leftovers):
    out = Parallel(n_jobs=2)(delayed(nested_explicit_loky)(i) for i in (1, 10))
    assert out == [[1, 4], [100, 121]]


def test_backend_classes_keep_joblib_constructor_signature():
    import inspect

    expected = ["nesting_level", "inner_max_num_threads", "backend_kwargs"]
    for cls in (ParallelBackendBase, ThreadingBackend, para_core.SequentialBackend):
        assert list(inspect.signature(cls).parameters) == expected, cls
    backend = ThreadingBackend(nesting_level=2, inner_max_num_threads=None, foo=1)
    assert backend.nesting_level == 2 and backend.backend_kwargs == {"foo": 1}


@pytest.mark.parametrize(
    ("backend_class", "label"),
    [(LokyBackend, "Loky"), (MultiprocessingBackend, "Multiprocessing")],
)
def test_process_backends_use_one_worker_when_nested_below_a_thread(
    backend_class, label
):
    backend = backend_class(nesting_level=1)
    seen = {}

    def probe():
        with pytest.warns(UserWarning, match=f"^{label}-backed parallel loops"):
            seen["n_jobs"] = backend.effective_n_jobs(2)
        seen["quiet"] = backend.effective_n_jobs(1)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert seen == {"n_jobs": 1, "quiet": 1}
    assert backend.effective_n_jobs(2) == 2  # from the main thread
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)


def test_worker_thread_caps_follow_loky_max_cpu_count(monkeypatch):
    # The CPU count behind the caps is cached; the cache must see the change.
    import loky

    from para_core.backends._base import _usable_cpus

    for var in LokyBackend.MAX_NUM_THREADS_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert _usable_cpus() == 1
    assert LokyBackend()._prepare_worker_env(1)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "64")
    assert _usable_cpus() == loky.cpu_count() >= 1
    expected = str(loky.cpu_count())
    assert LokyBackend()._prepare_worker_env(1)["OMP_NUM_THREADS"] == expected


def test_parallel_config_names_a_builtin_backend_before_any_was_loaded():
    # The built-in backends register when their module loads; a fresh
    # process may name one in parallel_config before anything loaded it.
    import subprocess

    code = (
        "import para_core\n"
        "with para_core.parallel_config('multiprocessing'):\n"
        "    print(para_core.Parallel(n_jobs=2)("
        "para_core.delayed(abs)(-i) for i in range(3)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[0, 1, 2]")


def test_dask_is_registered_when_first_asked_for(monkeypatch):
    # joblib lists dask in EXTERNAL_BACKENDS only: code that builds every
    # backend of BACKENDS (joblib's own test module does at import) must work
    # with distributed installed and no dask client running.
    from para_core import _registry

    monkeypatch.setattr(_registry, "BACKENDS", dict(_registry.BACKENDS))
    _registry.BACKENDS.pop("dask", None)
    assert "dask" in _registry.EXTERNAL_BACKENDS
    for name, factory in _registry.backend_classes().items():
        assert isinstance(factory(), ParallelBackendBase), name
    _registry.EXTERNAL_BACKENDS["dask"]()
    assert _registry.BACKENDS["dask"] is _registry._BUILTIN["dask"]


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_batch_statistics_are_reset_after_a_call(backend, no_leftovers):
    p = Parallel(n_jobs=2, backend=backend)
    for _ in range(2):
        assert p(delayed(abs)(-i) for i in range(300)) == list(range(300))
        b = p._backend
        # joblib's names of the state a reset returns to.
        assert b._effective_batch_size == b._DEFAULT_EFFECTIVE_BATCH_SIZE == 1
        assert b._smoothed_batch_duration == b._DEFAULT_SMOOTHED_BATCH_DURATION


def test_a_backend_without_workers_is_refused():
    class NoWorkers(ThreadingBackend):
        def configure(self, *args, **kwargs):
            return 0

    with parallel_config(NoWorkers()):
        with pytest.raises(RuntimeError, match="NoWorkers has no active worker"):
            Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))


@pytest.mark.parametrize("callbacks", [True, False])
def test_threading_subclass_without_retrieve_callback(callbacks):
    # With callbacks off, results are polled through retrieve_result(): the
    # threading backend's futures are concurrent.futures ones (no .get()).
    class Polled(ThreadingBackend):
        supports_retrieve_callback = callbacks

    with parallel_config(Polled()):
        assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(5)) == [
            0,
            1,
            2,
            3,
            4,
        ]


@pytest.mark.parametrize("backend_class", [LokyBackend, MultiprocessingBackend])
def test_batch_target_follows_the_callers_pickling_time(backend_class):
    # Tasks that drag a large context along (scikit-learn's searches) take
    # milliseconds each to pickle in the caller: batches then aim longer, so
    # that the caller's pickling takes little from the workers, up to where
    # joblib's batches end (twice its 200 ms ideal).
    backend = backend_class()
    backend._n_jobs = 2
    base = backend_class.MIN_IDEAL_BATCH_DURATION
    backend.start_call()
    backend._note_pickling(0.0001)
    assert base == backend.MIN_IDEAL_BATCH_DURATION
    for _ in range(40):
        backend._note_pickling(0.007)
    assert pytest.approx(20 * 2 * 0.007, rel=0.02) == backend.MIN_IDEAL_BATCH_DURATION
    for _ in range(40):
        backend._note_pickling(1.0)
    # joblib's batches end at twice its 200 ms ideal; so do ours.
    assert backend.MIN_IDEAL_BATCH_DURATION == 0.4
    # compute_batch_size aims at the new target.
    backend._effective_batch_size, backend._smoothed_batch_duration = 4, 0.05
    assert backend.compute_batch_size() == 32
    # A new call starts from the class's target again.
    backend.start_call()
    assert base == backend.MIN_IDEAL_BATCH_DURATION
    assert base == backend_class.MIN_IDEAL_BATCH_DURATION


class _Shipped:
    """An argument a transport session sends its own way (a large array)."""


class _SlowTransport:
    """A transport session whose reducer spends 5 s (on a fake clock) writing."""

    reduce_types = (_Shipped,)
    result_reducer = None

    def __init__(self, clock):
        self.clock = clock

    def reduce_task_object(self, obj):
        self.clock[0] += 5.0
        return NotImplemented


def test_batch_target_leaves_the_transports_time_out(monkeypatch):
    # A transport that writes a 320 MB array into shared memory while the
    # first batch is pickled spends that time once, for every later batch
    # and call: counted as pickling, it would push batches to 200 ms at once.
    from para_core._batch import BatchedCalls
    from para_core.backends import _packets, _process

    clock = [0.0]
    monkeypatch.setattr(_process.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(_packets, "perf_counter", lambda: clock[0])
    backend = LokyBackend()
    backend._n_jobs = 2
    backend.parallel = type("P", (), {"_transport_session": _SlowTransport(clock)})()
    backend.start_call()
    batch = BatchedCalls([(square, (_Shipped(),), {})], ("loky", 2))
    payload, _ = backend._payload(batch)
    assert clock[0] == 5.0  # the transport did run, on the fake clock
    assert payload
    assert backend._pickling_s == 0.0
    assert LokyBackend.MIN_IDEAL_BATCH_DURATION == backend.MIN_IDEAL_BATCH_DURATION


class _CountsWorkersWhenPickled:
    """Records how many worker processes run when the caller pickles it."""

    seen: list = []

    def __reduce__(self):
        import psutil

        workers = [
            c
            for c in psutil.Process().children()
            if "resource_tracker" not in " ".join(c.cmdline())
        ]
        type(self).seen.append(len(workers))
        return (int, ())


def test_loky_workers_start_before_the_first_batch_is_pickled():
    # A large first argument (written into shared memory while it is
    # pickled) should not delay the workers' start and imports: they start
    # when the call does, and boot while the caller pickles.
    from conftest import shutdown_loky, wait_no_children

    shutdown_loky()
    assert wait_no_children() == []
    _CountsWorkersWhenPickled.seen.clear()
    out = Parallel(n_jobs=2, backend="loky", batch_size=1)(
        delayed(identity)(_CountsWorkersWhenPickled()) for _ in range(2)
    )
    assert out == [0, 0]
    assert _CountsWorkersWhenPickled.seen[0] == 2
