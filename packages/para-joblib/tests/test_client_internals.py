"""joblib's internal names that client libraries use, used the way they do.

Each test names the client whose code it mirrors. Where the behaviour is
joblib's own, the test runs against both the released joblib and para_joblib
(``jl`` fixture) and asserts the same outcome for each.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import para_joblib


@pytest.fixture(params=["joblib", "para_joblib"])
def jl(request):
    return importlib.import_module(request.param)


def _sub(jl, name):
    return importlib.import_module(f"{jl.__name__}.{name}")


def _run(code: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


# --------------------------------------------------------------- parallel.mp


def test_parallel_mp_read_at_import_like_scikit_learn():
    # sklearn.utils._testing: skipif(not joblib.parallel.mp, "serial mode")
    import multiprocessing

    from para_joblib import parallel

    assert parallel.mp is multiprocessing
    assert "mp" in dir(parallel)


def test_parallel_mp_is_none_in_joblib_serial_mode():
    code = "import {0}.parallel as p; print(p.mp)"
    for name in ("joblib", "para_joblib"):
        assert _run(code.format(name), JOBLIB_MULTIPROCESSING="0").strip() == "None"


# ------------------------------------------------------- get_active_backend


def test_get_active_backend_like_mne_and_networkx(jl):
    # mne.parallel._running_in_joblib_context; networkx-parallel's n_jobs
    from_parallel = _sub(jl, "parallel")
    backend, n_jobs = from_parallel.get_active_backend()
    assert n_jobs is None
    assert isinstance(backend, from_parallel.LokyBackend)
    with jl.parallel_config(backend="threading", n_jobs=3):
        backend, n_jobs = from_parallel.get_active_backend()
        assert n_jobs == 3
        assert isinstance(backend, from_parallel.ThreadingBackend)


def test_default_backend_class_like_scikit_learn_forest_tests(jl):
    # sklearn/ensemble/tests/test_forest.py:
    # DEFAULT_JOBLIB_BACKEND = joblib.parallel.get_active_backend()[0].__class__
    p = _sub(jl, "parallel")
    default = p.get_active_backend()[0].__class__
    assert default is p.LokyBackend
    assert p.DEFAULT_BACKEND == "loky"
    with jl.parallel_config(backend="threading"):
        assert p.get_active_backend()[0].__class__ is p.ThreadingBackend


def test_default_backend_follows_make_default():
    from para_joblib import parallel

    class Mine(parallel.ThreadingBackend):
        pass

    parallel.register_parallel_backend("mine-default", Mine, make_default=True)
    try:
        assert parallel.DEFAULT_BACKEND == "mine-default"
        assert type(parallel.get_active_backend()[0]) is Mine
    finally:
        parallel.register_parallel_backend("loky", parallel.LokyBackend, True)
    assert parallel.DEFAULT_BACKEND == "loky"


def test_backend_repr_and_n_jobs_like_mne(jl):
    # mne.parallel.parallel_func: Parallel(**kw).n_jobs, then
    # str(parallel._backend) searched for "LokyBackend" & co.
    for n_jobs, expected in [(1, 1), (2, 2), (None, 1)]:
        parallel = jl.Parallel(n_jobs=n_jobs)
        assert parallel.n_jobs == expected
        assert "LokyBackend" in str(parallel._backend)
    with jl.parallel_config(backend="threading", n_jobs=2):
        parallel = jl.Parallel()
        assert parallel.n_jobs == 2
        assert "ThreadingBackend" in str(parallel._backend)


@pytest.mark.parametrize("backend", ["loky", "threading", "sequential"])
def test_batch_completion_callback_replaced_like_tqdm_joblib(jl, backend):
    # The "tqdm_joblib" recipe: a subclass assigned to
    # joblib.parallel.BatchCompletionCallBack for one call, then put back.
    parallel = _sub(jl, "parallel")
    done = []

    class Count(parallel.BatchCompletionCallBack):
        def __call__(self, *args, **kwargs):
            done.append(self.batch_size)
            return super().__call__(*args, **kwargs)

    original = parallel.BatchCompletionCallBack
    parallel.BatchCompletionCallBack = Count
    try:
        assert parallel.BatchCompletionCallBack is Count
        n_jobs = 1 if backend == "sequential" else 2
        out = jl.Parallel(n_jobs=n_jobs, backend=backend)(
            jl.delayed(abs)(-i) for i in range(40)
        )
    finally:
        parallel.BatchCompletionCallBack = original
    assert parallel.BatchCompletionCallBack is original
    assert out == list(range(40))
    if jl.__name__ == "joblib" and backend == "sequential":
        assert done == []  # joblib makes no callback when running serially
    else:
        assert sum(done) == 40


def test_batch_completion_callback_assignment_reaches_para_core(monkeypatch):
    import para_core
    from para_joblib import parallel

    base = para_core.BatchCompletionCallBack
    assert parallel.BatchCompletionCallBack is base
    assert "BatchCompletionCallBack" in dir(parallel)

    class Mine(parallel.BatchCompletionCallBack):
        pass

    # pytest's monkeypatch (getattr, setattr, then setattr back) as in tests
    monkeypatch.setattr(parallel, "BatchCompletionCallBack", Mine)
    assert para_core.get_batch_completion_callback() is Mine
    monkeypatch.undo()
    assert para_core.get_batch_completion_callback() is base
    parallel.BatchCompletionCallBack = Mine
    del parallel.BatchCompletionCallBack  # back to the default
    assert parallel.BatchCompletionCallBack is base
    assert "BatchCompletionCallBack" not in vars(parallel)
    with pytest.raises(TypeError, match="subclass"):
        parallel.BatchCompletionCallBack = object
    assert para_core.get_batch_completion_callback() is base
    parallel.some_client_flag = 1  # other names stay plain module attributes
    assert vars(parallel)["some_client_flag"] == 1
    del parallel.some_client_flag


def test_task_status_names_and_backend_hints(jl):
    p = _sub(jl, "parallel")
    assert (p.TASK_DONE, p.TASK_ERROR, p.TASK_PENDING) == ("Done", "Error", "Pending")
    assert p.VALID_BACKEND_HINTS == ("processes", "threads", None)
    assert p.VALID_BACKEND_CONSTRAINTS == ("sharedmem", None)


def test_batched_calls_is_what_backends_receive():
    # dask's and other custom backends check isinstance(func, BatchedCalls)
    # and read func.items / len(func).
    from para_joblib import parallel

    seen = []

    class Inspecting(parallel.ThreadingBackend):
        def submit(self, func, callback=None):
            seen.append((type(func), len(func), [f for f, _, _ in func.items]))
            return super().submit(func, callback)

    para_joblib.Parallel(n_jobs=2, backend=Inspecting(), batch_size=2)(
        para_joblib.delayed(abs)(-i) for i in range(4)
    )
    assert seen and all(t is parallel.BatchedCalls for t, _, _ in seen)
    assert sum(n for _, n, _ in seen) == 4
    assert all(fs == [abs] * n for _, n, fs in seen)


def test_batched_calls_built_the_joblib_way(jl):
    import pickle

    p = _sub(jl, "parallel")
    reduced = []
    batch = p.BatchedCalls(
        iter([(abs, (-1,), {}), (max, (1, 5), {})]),
        (p.SequentialBackend(), 1),
        reducer_callback=lambda: reduced.append(True),
        pickle_cache={},
    )
    assert len(batch) == 2
    assert batch() == [1, 5]
    assert pickle.loads(pickle.dumps(batch))() == [1, 5]
    assert reduced == [True]


# ----------------------------------------------- the backend calling protocol


def _recording_backend(jl, log):
    p = _sub(jl, "parallel")

    class Recording(p.ThreadingBackend):
        def effective_n_jobs(self, n_jobs):
            return super().effective_n_jobs(n_jobs)

        def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **kw):
            log.append(("configure", n_jobs, type(parallel).__name__, prefer, require))
            return super().configure(n_jobs=n_jobs, parallel=parallel, **kw)

        def start_call(self):
            log.append(("start_call",))
            super().start_call()

        def stop_call(self):
            log.append(("stop_call",))
            super().stop_call()

        def terminate(self):
            log.append(("terminate",))
            super().terminate()

        def submit(self, func, callback=None):
            log.append(("submit",))
            return super().submit(func, callback)

    return Recording


def _shape(log):
    """The log with repeated submits folded: the protocol's shape."""
    out = []
    for entry in log:
        if entry == ("submit",) and out and out[-1] == ("submit",):
            continue
        out.append(entry)
    return out


def test_backend_subclass_gets_joblibs_calling_protocol(jl):
    log = []
    backend_cls = _recording_backend(jl, log)
    jl.register_parallel_backend("recording", backend_cls)
    with jl.parallel_config(backend="recording", n_jobs=2):
        assert jl.Parallel()(jl.delayed(abs)(-i) for i in range(6)) == list(range(6))
    assert _shape(log) == [
        ("configure", 2, "Parallel", None, None),
        ("start_call",),
        ("submit",),
        ("stop_call",),
        ("terminate",),
    ]
    # One configure, one terminate per with-block; start/stop per call.
    log.clear()
    backend = backend_cls(nesting_level=0, inner_max_num_threads=2)
    with jl.Parallel(n_jobs=2, backend=backend, prefer="threads") as parallel:
        parallel(jl.delayed(abs)(-i) for i in range(3))
        parallel(jl.delayed(abs)(-i) for i in range(3))
    assert backend.nesting_level == 0 and backend.inner_max_num_threads == 2
    assert _shape(log) == [
        ("configure", 2, "Parallel", "threads", None),
        ("start_call",),
        ("submit",),
        ("stop_call",),
        ("start_call",),
        ("submit",),
        ("stop_call",),
        ("terminate",),
    ]


def test_effective_n_jobs_override_decides_the_workers(jl):
    p = _sub(jl, "parallel")

    class Three(p.ThreadingBackend):
        def effective_n_jobs(self, n_jobs):
            return 3

    with jl.parallel_config(backend=Three()):
        assert jl.effective_n_jobs(-1) == 3
        parallel = jl.Parallel(n_jobs=-1)
        out = parallel(jl.delayed(threading.get_ident)() for _ in range(30))
    assert len(out) == 30


# ----------------------------------- joblib-spark: ParallelBackendBase first


def test_spark_like_backend_with_apply_async_and_sequential_nesting(jl):
    # joblibspark.backend.SparkDistributedBackend(ParallelBackendBase,
    # AutoBatchingMixin): apply_async on a ThreadPool, results polled,
    # nested calls sequential, start_call / terminate hooks.
    from multiprocessing.pool import ThreadPool

    p = _sub(jl, "parallel")
    events = []

    class SparkLike(p.ParallelBackendBase, p.AutoBatchingMixin):
        def __init__(self, **backend_args):
            super().__init__(**backend_args)
            self._pool = None
            self._n_jobs = None

        def effective_n_jobs(self, n_jobs):
            return 2 if n_jobs in (None, -1) else n_jobs

        def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **kw):
            self._n_jobs = self.effective_n_jobs(n_jobs)
            self.parallel = parallel
            return self._n_jobs

        def start_call(self):
            events.append("start_call")

        def apply_async(self, func, callback=None):
            if self._pool is None:
                self._pool = ThreadPool(self._n_jobs)
            return self._pool.apply_async(func, callback=callback)

        def terminate(self):
            events.append("terminate")
            if self._pool is not None:
                self._pool.terminate()
                self._pool = None

        def get_nested_backend(self):
            level = getattr(self, "nesting_level", 0) + 1
            return p.SequentialBackend(nesting_level=level), None

    def nested_backend_name(i):
        return i, type(p.get_active_backend()[0]).__name__

    p.register_parallel_backend("spark-like", lambda: SparkLike(nesting_level=0))
    with jl.parallel_config(backend="spark-like", n_jobs=2):
        out = jl.Parallel()(jl.delayed(nested_backend_name)(i) for i in range(5))
    assert out == [(i, "SequentialBackend") for i in range(5)]
    assert events == ["start_call", "terminate"]


# ------------------------------------------------ ray: rebasing PicklingPool


class FakePoolTaskError(Exception):
    """Stands for ray.util.multiprocessing.pool.PoolTaskError."""


class FakeRayPool:
    """Stands for ray.util.multiprocessing.Pool: records what it is given."""

    instances: list = []

    def __init__(
        self,
        processes=None,
        initializer=None,
        initargs=None,
        maxtasksperchild=None,
        context=None,
        ray_address=None,
        ray_remote_args=None,
    ):
        self.processes = processes
        self.ray_remote_args = ray_remote_args
        self.tasks = 0
        self._executor = ThreadPoolExecutor(processes)
        FakeRayPool.instances.append(self)

    def apply_async(self, func, args=(), kwds=None, callback=None, error_callback=None):
        self.tasks += 1

        def run():
            try:
                value = func(*args, **(kwds or {}))
            except BaseException as exc:
                # ray's pool hands its own error, the task's inside
                if error_callback is not None:
                    error_callback(FakePoolTaskError(exc))
                return
            if callback is not None:
                callback(value)

        return self._executor.submit(run)

    def close(self):
        pass

    def terminate(self):
        self._executor.shutdown(wait=True)

    def join(self):
        pass


def _ray_like_backend(jl):
    backends = _sub(jl, "_parallel_backends")
    pool = _sub(jl, "pool")

    class RayLikeBackend(backends.MultiprocessingBackend):
        # ray.util.joblib.ray_backend.RayBackend, with the fake pool
        def __init__(
            self,
            nesting_level=None,
            inner_max_num_threads=None,
            ray_remote_args=None,
            **kwargs,
        ):
            self.ray_remote_args = ray_remote_args
            super().__init__(
                nesting_level=nesting_level,
                inner_max_num_threads=inner_max_num_threads,
                **kwargs,
            )

        def configure(
            self,
            n_jobs=1,
            parallel=None,
            prefer=None,
            require=None,
            ray_remote_args=None,
            **memmappingpool_args,
        ):
            pool.PicklingPool.__bases__ = (FakeRayPool,)
            return super().configure(
                n_jobs,
                parallel,
                prefer,
                require,
                ray_remote_args=ray_remote_args or self.ray_remote_args,
                **memmappingpool_args,
            )

    return RayLikeBackend, pool


def _fails_on_three(i):
    if i == 3:
        raise KeyError(i)
    return i


def test_ray_like_backend_runs_on_the_rebased_pool(jl):
    backend_cls, pool = _ray_like_backend(jl)
    original = pool.PicklingPool.__bases__
    FakeRayPool.instances = []
    jl.register_parallel_backend("ray-like", backend_cls)
    big = np.arange(2_000_000, dtype=np.float64)
    try:
        with jl.parallel_config(
            backend="ray-like", n_jobs=2, ray_remote_args={"num_cpus": 1}
        ):
            assert jl.Parallel()(jl.delayed(abs)(-i) for i in range(5)) == list(
                range(5)
            )
            with pytest.raises(KeyError) as info:
                jl.Parallel()(jl.delayed(_fails_on_three)(i) for i in range(5))
            # the worker's traceback rides along, as on joblib
            assert "_fails_on_three" in str(info.value.__cause__)
            sums = jl.Parallel()(jl.delayed(np.sum)(big) for _ in range(2))
        assert sums == [big.sum()] * 2
    finally:
        pool.PicklingPool.__bases__ = original
    assert len(FakeRayPool.instances) >= 3
    for instance in FakeRayPool.instances:
        assert instance.processes == 2
        assert instance.ray_remote_args == {"num_cpus": 1}
    # every batch of the three calls went through the client's pool
    assert sum(i.tasks for i in FakeRayPool.instances) >= 5 + 2


def test_pool_classes_keep_joblibs_layout(jl):
    pool = _sub(jl, "pool")
    assert issubclass(pool.MemmappingPool, pool.PicklingPool)
    original = pool.PicklingPool.__bases__
    FakeRayPool.instances = []
    pool.PicklingPool.__bases__ = (FakeRayPool,)
    try:
        # the client's base gets processes and its own arguments only
        rebased = pool.MemmappingPool(
            3, max_nbytes=10, temp_folder=None, ray_remote_args={"x": 1}
        )
        assert isinstance(rebased, FakeRayPool)
        assert (rebased.processes, rebased.ray_remote_args) == (3, {"x": 1})
        rebased.terminate()
    finally:
        pool.PicklingPool.__bases__ = original
    with pool.MemmappingPool(2, max_nbytes=100) as own:
        assert own.map(np.sum, [np.ones(1000)] * 2) == [1000.0, 1000.0]
        assert os.path.isdir(own._temp_folder)


def test_multiprocessing_backend_on_its_own_pool_shares_large_arrays():
    from para_joblib._parallel_backends import MultiprocessingBackend

    big = np.ones(500_000)

    def is_memmap(a):
        return type(a).__name__, float(a.sum())

    with para_joblib.parallel_config(backend=MultiprocessingBackend(), n_jobs=2):
        out = para_joblib.Parallel(max_nbytes=1000)(
            para_joblib.delayed(is_memmap)(big) for _ in range(2)
        )
    assert out == [("memmap", 500_000.0)] * 2


# --------------------------------------------------------- externals.loky


def test_externals_are_loky_and_cloudpickle():
    import cloudpickle
    import loky

    from para_joblib import externals

    assert externals.loky is loky
    assert externals.cloudpickle is cloudpickle
    executor = externals.loky.get_reusable_executor(max_workers=1)
    assert executor.submit(abs, -3).result() == 3


# ----------------------------------------------------------------- memory


def _double(x):
    return 2 * x


def test_memorized_classes_like_nilearn(jl, tmp_path):
    # nilearn's cache_mixin checks isinstance(func, MemorizedFunc) and
    # reads .func; scikit-learn's check_memory wants the Memory interface.
    memory_mod = _sub(jl, "memory")
    cached = jl.Memory(tmp_path / jl.__name__, verbose=0).cache(_double)
    assert isinstance(cached, memory_mod.MemorizedFunc)
    assert cached.func is _double
    assert cached(4) == 8
    result = cached.call_and_shelve(5)
    assert isinstance(result, memory_mod.MemorizedResult)
    assert result.get() == 10
    plain = jl.Memory(None).cache(_double)
    assert isinstance(plain, memory_mod.NotMemorizedFunc)
    assert plain(2) == 4
    assert issubclass(memory_mod.JobLibCollisionWarning, UserWarning)


def test_collision_warning_is_raised_and_catchable(tmp_path):
    from para_joblib.memory import JobLibCollisionWarning

    memory = para_joblib.Memory(tmp_path, verbose=0)
    code = "def same(x):\n    return x\n"
    ns1, ns2 = {"__name__": "dup"}, {"__name__": "dup"}
    exec(compile(code, "<a>", "exec"), ns1)
    exec(compile(code.replace("return x", "return x + 1"), "<a>", "exec"), ns2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        memory.cache(ns1["same"])(1)
        memory.cache(ns2["same"])(1)
    kinds = {type(w.message) for w in caught}
    assert JobLibCollisionWarning in kinds or any(
        issubclass(k, JobLibCollisionWarning) for k in kinds
    ), [str(w.message) for w in caught]


# ------------------------------------------------------------ func_inspect


def _func(a, b=2, *args, c=3, **kwargs):
    return a


def test_func_inspect_matches_joblib():
    import joblib.func_inspect as theirs

    from para_joblib import func_inspect as ours

    for args, kwargs, ignore in [
        ((1,), {}, []),
        ((1, 5, 6), {"c": 7, "d": 8}, ["b"]),
        ((1,), {"b": 4}, ["a"]),
    ]:
        assert ours.filter_args(_func, ignore, args, kwargs) == theirs.filter_args(
            _func, ignore, args, kwargs
        )
    assert ours.get_func_name(_func) == theirs.get_func_name(_func)
    assert ours.format_signature(_func, 1, c=2) == theirs.format_signature(
        _func, 1, c=2
    )
    code, source_file, first_line = ours.get_func_code(_func)
    assert "def _func(a, b=2" in code
    assert source_file == __file__
    assert first_line == theirs.get_func_code(_func)[2]
    with pytest.raises(ValueError):
        ours.filter_args(_func, ["nope"], (1,), {})


# ----------------------------------------------------------------- hashing


def test_hasher_classes_like_clients(jl):
    hashing = _sub(jl, "hashing")
    a, b = np.arange(10), np.arange(10)
    assert hashing.NumpyHasher().hash(a) == hashing.NumpyHasher().hash(b)
    assert hashing.NumpyHasher().hash(a) != hashing.NumpyHasher().hash(a + 1)
    assert hashing.Hasher().hash({"x": 1, "y": [1, 2]}) == hashing.Hasher().hash(
        {"y": [1, 2], "x": 1}
    )
    assert len(hashing.Hasher(hash_name="sha1").hash("abc")) == 40


# ----------------------------------------------------------- store backends


def test_custom_store_backend_subclass(jl, tmp_path):
    stores = _sub(jl, "_store_backends")
    used = []

    class Counting(stores.FileSystemStoreBackend):
        def dump_item(self, call_id, item, verbose=1):
            used.append(call_id)
            return super().dump_item(call_id, item, verbose)

    name = f"counting-{jl.__name__}"
    jl.register_store_backend(name, Counting)
    memory = jl.Memory(str(tmp_path), backend=name, verbose=0)
    assert memory.cache(_double)(21) == 42
    assert memory.cache(_double)(21) == 42
    assert len(used) == 1
    assert isinstance(memory.store_backend, stores.StoreBackendMixin)
    info = stores.CacheItemInfo(path="p", size=1, last_access=None)
    assert info._fields == ("path", "size", "last_access")


# --------------------------------------------------------------- version


def test_version_is_the_joblib_api_level():
    from packaging.version import Version

    assert para_joblib.__version__ == "1.6.0"
    assert Version(para_joblib.__version__) >= Version("1.3")
    assert para_joblib.para_version == importlib.metadata.version("para-joblib")


# ------------------------------------------------------------ numpy_pickle


def test_numpy_pickler_subclass_like_scikit_learn_tree_tests(jl):
    # sklearn/tree/tests/test_tree.py: a NumpyPickler subclass stores arrays
    # in the other byte order; joblib.load reads the stream back.
    import io

    pickler_cls = _sub(jl, "numpy_pickle").NumpyPickler

    class NonNativeEndianness(pickler_cls):
        def save(self, obj):
            if isinstance(obj, np.ndarray):
                obj = obj.byteswap().view(obj.dtype.newbyteorder())
            super().save(obj)

    data = {
        "c": np.arange(12.0).reshape(3, 4),
        "f": np.asfortranarray(np.arange(12).reshape(3, 4)),
        "objects": np.array([1, "a", None], dtype=object),
        "empty": np.zeros(0),
    }
    for cls in (pickler_cls, NonNativeEndianness):
        buffer = io.BytesIO()
        cls(buffer).dump(data)
        # both loaders read what either pickler wrote
        for load in (para_joblib.load, importlib.import_module("joblib").load):
            buffer.seek(0)
            out = load(buffer)
            for key in ("c", "f", "empty"):
                np.testing.assert_array_equal(out[key], data[key])
            assert list(out["objects"]) == [1, "a", None]
