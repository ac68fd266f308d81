"""The dask.distributed backend, on a real two-process LocalCluster."""

from __future__ import annotations

import gc
import os
import pickle
import subprocess
import sys
import time

import psutil
import pytest

distributed = pytest.importorskip("distributed")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from para_core import (  # noqa: E402
    Parallel,
    delayed,
    get_active_backend,
    parallel_backend,
    parallel_config,
)
from para_core.backends._dask import DaskDistributedBackend  # noqa: E402

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- fixtures
def _live_children() -> set[int]:
    alive = set()
    for child in psutil.Process().children(recursive=True):
        try:
            # multiprocessing's resource tracker is a per-interpreter
            # singleton living until exit, not a worker.
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in (
                " ".join(child.cmdline())
            ):
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture(scope="module", autouse=True)
def dask_scratch_in_pytest_tmp(tmp_path_factory):
    # dask keeps a shared scratch folder (locks, spilled data) in the system
    # temp dir unless told otherwise: keep it where pytest cleans up.
    import dask

    scratch = str(tmp_path_factory.mktemp("dask-scratch"))
    with dask.config.set({"temporary-directory": scratch}):
        yield


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    before = _live_children()
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # loopback only (None means :8787)
        # dask's scratch space would otherwise outlive the tests in /tmp.
        local_directory=str(tmp_path_factory.mktemp("dask")),
    )
    client = distributed.Client(cluster)
    started = _live_children() - before
    assert started, "the cluster should run its workers in child processes"
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        deadline = time.monotonic() + 20
        while (_live_children() & started) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not (_live_children() & started), "dask worker processes left"


def _scheduler_keys(dask_scheduler=None):
    return [str(k) for k in dask_scheduler.tasks]


@pytest.fixture
def dask_client(client):
    """The shared client; afterwards, the scheduler holds no task of ours."""
    yield client
    gc.collect()  # exceptions kept by pytest hold frames that hold Futures
    deadline = time.monotonic() + 10
    while True:
        left = client.run_on_scheduler(_scheduler_keys)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert left == []


# ------------------------------------------------------------ task helpers
def square(x):
    return x * x


def slow_square(x, delay):
    time.sleep(delay)
    return x * x


def fail_on(x, bad):
    if x == bad:
        raise KeyError(f"bad value {x}")
    return x


def where_am_i(_):
    return distributed.get_worker().address


def active_backend_name(_):
    return type(get_active_backend()[0]).__name__


def nested_sum(n):
    return sum(Parallel(backend="dask")(delayed(square)(i) for i in range(n)))


def nested_default_sum(n):
    # No backend given: the nested backend set by the outer call applies.
    inner = Parallel()(delayed(square)(i) for i in range(n))
    return sum(inner), active_backend_name(None)


def length(obj):
    return len(obj)


def total(array):
    return float(array.sum())


def touch_then_sleep(i, folder, delay):
    if i == 0:
        raise ValueError("first task fails")
    open(os.path.join(folder, str(i)), "w").close()
    time.sleep(delay)
    return i


class Tracked:
    """A large-looking object that counts how often the caller pickles it."""

    pickled = 0

    def __init__(self, size):
        self.size = size

    def __sizeof__(self):
        return self.size

    def __len__(self):
        return self.size

    def __reduce__(self):
        Tracked.pickled += 1
        return (Tracked, (self.size,))


# ---------------------------------------------------------------- results
@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
def test_results_in_each_return_mode(dask_client, return_as):
    out = Parallel(backend="dask", return_as=return_as, batch_size=1)(
        delayed(slow_square)(i, 0.05 * (i % 3)) for i in range(12)
    )
    if return_as == "list":
        assert out == [i * i for i in range(12)]
        return
    assert not isinstance(out, list)
    got = list(out)
    if return_as == "generator":
        assert got == [i * i for i in range(12)]
    else:
        assert sorted(got) == [i * i for i in range(12)]


def test_generator_is_lazy_and_can_be_dropped(dask_client):
    gen = Parallel(backend="dask", return_as="generator", batch_size=1)(
        delayed(slow_square)(i, 0.1) for i in range(40)
    )
    assert next(gen) == 0
    assert next(gen) == 1
    gen.close()  # cancels what is left; the fixture checks the scheduler
    assert Parallel(backend="dask")(delayed(square)(i) for i in range(3)) == [0, 1, 4]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    xs=st.lists(st.integers(-1000, 1000), max_size=30),
    batch_size=st.sampled_from(["auto", 1, 4]),
    return_as=st.sampled_from(["list", "generator", "generator_unordered"]),
)
def test_same_results_as_map(dask_client, xs, batch_size, return_as):
    out = Parallel(backend="dask", batch_size=batch_size, return_as=return_as)(
        delayed(square)(x) for x in xs
    )
    expected = [x * x for x in xs]
    if return_as == "generator_unordered":
        assert sorted(out) == sorted(expected)
    else:
        assert list(out) == expected


def test_parallel_config_and_legacy_parallel_backend(dask_client):
    with parallel_config(backend="dask"):
        assert type(get_active_backend()[0]) is DaskDistributedBackend
        assert Parallel()(delayed(square)(i) for i in range(5)) == [0, 1, 4, 9, 16]
    with parallel_backend("dask") as (backend, _):
        assert isinstance(backend, DaskDistributedBackend)
        assert Parallel()(delayed(square)(i) for i in range(3)) == [0, 1, 4]


def test_explicit_client_and_submit_options(dask_client):
    target = sorted(dask_client.nthreads())[0]
    with parallel_config(backend="dask", client=dask_client, workers=[target]):
        where = Parallel(batch_size=1)(delayed(where_am_i)(i) for i in range(6))
    assert set(where) == {target}


def test_uses_every_thread_of_the_cluster(dask_client):
    backend = DaskDistributedBackend()
    assert backend.effective_n_jobs(-1) == 2
    assert backend.effective_n_jobs(1) == 2  # like joblib: the cluster decides
    with pytest.raises(ValueError, match="n_jobs == 0"):
        backend.effective_n_jobs(0)
    where = Parallel(backend="dask", batch_size=1)(
        delayed(slow_square)(i, 0.2) for i in range(8)
    )
    assert len(where) == 8


def test_context_manager_reuses_the_backend(dask_client):
    with Parallel(backend="dask") as parallel:
        assert parallel(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]
        assert parallel(delayed(square)(i) for i in range(2)) == [0, 1]


# ---------------------------------------------------------------- scatter
def test_shared_argument_is_scattered_once(dask_client):
    big = Tracked(10_000_000)
    Tracked.pickled = 0
    out = Parallel(backend="dask", batch_size=1)(
        delayed(length)(big) for _ in range(30)
    )
    assert out == [10_000_000] * 30
    assert Tracked.pickled == 1


def test_without_scatter_the_argument_travels_with_each_batch(dask_client):
    big = Tracked(10_000_000)
    Tracked.pickled = 0
    with parallel_config(backend="dask", scatter_threshold=None):
        out = Parallel(batch_size=1)(delayed(length)(big) for _ in range(10))
    assert out == [10_000_000] * 10
    assert Tracked.pickled >= 10  # at least once per batch


def _count_scatters(client, monkeypatch) -> list[int]:
    """From now on, the size of every ``client.scatter`` list, in order."""
    calls: list[int] = []
    real_scatter = client.scatter

    def counting_scatter(data, **kwargs):
        calls.append(len(data))
        return real_scatter(data, **kwargs)

    monkeypatch.setattr(client, "scatter", counting_scatter)
    return calls


def test_scatter_counts_through_the_client(dask_client, monkeypatch):
    calls = _count_scatters(dask_client, monkeypatch)
    shared = list(range(50_000))  # lists cannot be weakly referenced
    small = [1, 2, 3]
    out = Parallel(backend="dask", batch_size=1)(
        delayed(length)(x) for x in [shared, small] * 10
    )
    assert out == [50_000, 3] * 10
    assert calls == [1]
    # A new call scatters again (the previous call's copy was released).
    Parallel(backend="dask")(delayed(length)(shared) for _ in range(3))
    assert calls == [1, 1]


def test_keyword_arguments_are_scattered_too(dask_client, monkeypatch):
    calls = _count_scatters(dask_client, monkeypatch)
    text = "x" * 200_000
    out = Parallel(backend="dask", batch_size=1)(
        delayed(length)(obj=text) for _ in range(5)
    )
    assert out == [200_000] * 5
    assert calls == [1]


def test_arrays_are_scattered_from_one_kilobyte(dask_client, monkeypatch):
    np = pytest.importorskip("numpy")
    calls = _count_scatters(dask_client, monkeypatch)
    arrays = [np.arange(1000, dtype="float64") for _ in range(2)]
    out = Parallel(backend="dask", batch_size=1)(delayed(total)(a) for a in arrays * 4)
    assert out == [float(arrays[0].sum())] * 8
    assert len(calls) == 2
    assert Parallel(backend="dask")(delayed(length)(a) for a in [np.zeros(3)]) == [3]
    assert len(calls) == 2  # a tiny array travels inline


def test_pre_scattered_objects(dask_client, monkeypatch):
    data = list(range(1000))
    with parallel_config(backend="dask", scatter=[data]):
        calls = _count_scatters(dask_client, monkeypatch)
        out = Parallel()(delayed(length)(data) for _ in range(5))
        backend = get_active_backend()[0]
    assert out == [1000] * 5
    assert calls == []
    backend.terminate()
    del backend  # the pre-scattered data lives as long as the backend


# ---------------------------------------------------------------- errors
def test_error_keeps_its_type_and_worker_traceback(dask_client):
    with pytest.raises(KeyError, match="bad value 3") as info:
        Parallel(backend="dask")(delayed(fail_on)(i, 3) for i in range(8))
    cause = info.value.__cause__
    assert cause is not None
    assert "fail_on" in str(cause)
    # The backend is usable again right away.
    assert Parallel(backend="dask")(delayed(square)(i) for i in range(3)) == [0, 1, 4]


def test_first_error_cancels_the_remaining_tasks(dask_client, tmp_path):
    with pytest.raises(ValueError, match="first task fails"):
        Parallel(backend="dask", batch_size=1, pre_dispatch="all")(
            delayed(touch_then_sleep)(i, str(tmp_path), 0.5) for i in range(40)
        )
    time.sleep(1.0)
    started = len(os.listdir(tmp_path))
    # 39 tasks of 0.5 s on 2 threads would take ~10 s; cancelled, few ran.
    assert started < 20


def test_timeout_raises_and_the_next_call_works(dask_client):
    with pytest.raises(TimeoutError):
        Parallel(backend="dask", timeout=0.3, batch_size=1)(
            delayed(slow_square)(i, 1.5) for i in range(2)
        )
    assert Parallel(backend="dask")(delayed(square)(i) for i in range(3)) == [0, 1, 4]


def test_abort_everything_cancels_submitted_futures(dask_client):
    backend = DaskDistributedBackend()
    backend.configure(n_jobs=-1)
    backend.start_call()
    from para_core import BatchedCalls

    futures = [
        backend.submit(BatchedCalls([(slow_square, (i, 2.0), {})]), callback=None)
        for i in range(6)
    ]
    backend.abort_everything(ensure_ready=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(f.status == "pending" for f in futures):
        time.sleep(0.05)
    # Two may have started (2 worker threads); the rest never runs.
    assert sum(f.status == "cancelled" for f in futures) >= 4
    assert backend._in_flight == set()
    backend.stop_call()
    backend.terminate()
    del futures


# ---------------------------------------------------------------- nesting
def test_nested_calls_do_not_deadlock(dask_client):
    # Six outer tasks on two worker threads, each waiting for inner tasks:
    # without seceding, the two threads would wait forever.
    out = Parallel(backend="dask", batch_size=1)(
        delayed(nested_sum)(n) for n in range(6)
    )
    assert out == [sum(i * i for i in range(n)) for n in range(6)]


def test_nested_calls_use_the_dask_backend_by_default(dask_client):
    out = Parallel(backend="dask", batch_size=1)(
        delayed(nested_default_sum)(n) for n in range(4)
    )
    assert out == [
        (sum(i * i for i in range(n)), "DaskDistributedBackend") for n in range(4)
    ]


def test_nested_backend_travels_without_its_client(dask_client):
    backend = DaskDistributedBackend(client=dask_client, retries=1)
    nested, n_jobs = backend.get_nested_backend()
    assert n_jobs == -1
    assert nested.nesting_level == 1
    clone = pickle.loads(pickle.dumps(backend))
    assert clone._client is None
    assert clone.submit_kwargs == {"retries": 1}
    assert clone.client is dask_client  # found again through get_client()


# ---------------------------------------------------------------- bad input
def test_bad_arguments_are_named(dask_client):
    with pytest.raises(TypeError, match="scatter must be a list or a tuple"):
        DaskDistributedBackend(scatter="abc")
    with pytest.raises(TypeError, match=r"\['not_an_option'\]"):
        DaskDistributedBackend(not_an_option=1)
    with pytest.raises(ValueError, match="scatter_threshold"):
        DaskDistributedBackend(scatter_threshold=-1)
    assert DaskDistributedBackend(scatter_threshold="1K").scatter_threshold == 1024
    with pytest.raises(TypeError, match="parallel_config"):
        DaskDistributedBackend().configure(n_jobs=-1, scatter_threshold=10)


def test_without_a_client_the_error_says_to_create_one():
    code = (
        "from para_core import Parallel, delayed\n"
        "Parallel(backend='dask')(delayed(abs)(i) for i in range(2))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr
    assert "Create a Client first" in proc.stderr


def test_scheduler_host_opens_and_closes_its_own_client(dask_client):
    address = dask_client.scheduler.address
    with parallel_config(backend="dask", scheduler_host=address):
        backend = get_active_backend()[0]
        own = backend.client
        assert own is not dask_client
        assert Parallel()(delayed(square)(i) for i in range(4)) == [0, 1, 4, 9]
    assert own.status == "closed"  # closed when the call terminated the backend
    del backend, own


def test_a_cluster_without_workers_times_out_clearly(tmp_path):
    cluster = distributed.LocalCluster(
        # In-process (inproc:// transport): no socket is opened.
        n_workers=0,
        processes=False,
        dashboard_address="127.0.0.1:0",  # loopback only (None means :8787)
        local_directory=str(tmp_path),
    )
    try:
        with distributed.Client(cluster, set_as_default=False) as lonely:
            backend = DaskDistributedBackend(
                client=lonely, wait_for_workers_timeout=0.5
            )
            with pytest.raises(TimeoutError, match="wait_for_workers_timeout=10"):
                backend.effective_n_jobs(-1)
    finally:
        cluster.close()
