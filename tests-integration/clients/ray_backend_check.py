"""ray's joblib backend, with para standing in for joblib (issue 14).

Run by the ``ray`` hatch environment (``hatch run ray:run``), which sets
``PARA_AS_JOBLIB=1``: every ``import joblib`` of this session, ray's
``ray.util.joblib`` included, gives para_joblib. ray's ``RayBackend``
subclasses joblib's ``MultiprocessingBackend``, makes ray's actor ``Pool`` the
base of ``joblib.pool.PicklingPool`` and passes ``ray_remote_args`` through
``configure``: the tests check that the tasks really run in ray's actors, not
in a standard library pool.

The local ray instance listens on the loopback interface only, keeps its
session files in a temporary folder of its own, and is shut down at the end;
the last test checks that none of its processes is left. The file's name
does not start with ``test_``: the integration suite, whose environment has no
ray, does not collect it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sys
import tempfile
import time

import psutil
import pytest

# A loopback-only local instance started for this test (ray's single-machine
# mode, as on macOS: its node address is 127.0.0.1), no token file in the
# user's home, no usage report. ray's workers import this module by name to
# run its functions: its folder goes on their path.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["PYTHONPATH"] = os.pathsep.join(
    p
    for p in (os.path.dirname(os.path.abspath(__file__)), os.environ.get("PYTHONPATH"))
    if p
)

import joblib
import numpy as np
import ray
from ray.util.joblib import register_ray

_RAY_PROCESS_MARKERS = (
    "raylet",
    "gcs_server",
    "ray::",
    "ray/_private",
    "ray/dashboard",
)


def _ray_processes() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if any(marker in cmdline for marker in _RAY_PROCESS_MARKERS):
            found.append(proc)
    return found


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.fixture(scope="module")
def ray_instance():
    session_dir = tempfile.mkdtemp(prefix="ray-")
    shm_before = _shm()
    try:
        for attempt in range(3):
            try:
                ray.init(
                    num_cpus=2,
                    include_dashboard=False,
                    _temp_dir=session_dir,
                    log_to_driver=False,
                    configure_logging=False,
                )
                break
            except Exception as exc:
                # ray gives its node 30 s to start (fixed in ray); on a machine
                # busy with other jobs that is not always enough: try again.
                ray.shutdown(wait_for_processes=True)
                # A failed start is not a node ray knows it has to stop.
                left = _ray_processes()
                for proc in left:
                    proc.kill()
                psutil.wait_procs(left, timeout=10)
                if attempt == 2 or "timed out during startup" not in str(exc):
                    raise
        register_ray()
        yield {"processes": _ray_processes(), "shm_before": shm_before}
    finally:
        # Again if the last test did not run (a second call does nothing).
        ray.shutdown(wait_for_processes=True)
        shutil.rmtree(session_dir, ignore_errors=True)


def _where(i):
    context = ray.get_runtime_context()
    return i * i, os.getpid(), context.get_actor_id()


def _fail_on(i, bad):
    if i == bad:
        raise ValueError(f"task {i} failed on purpose")
    return i


def _column_means(X, j):
    return j, float(X[:, j].mean()), type(X).__name__


def _env_var(name):
    return os.environ.get(name)


def test_para_stands_in_for_joblib():
    import para_joblib

    assert joblib is para_joblib
    assert sys.modules["joblib"] is para_joblib
    from ray.util.joblib import ray_backend

    # ray's module imported "joblib" names: they are para's.
    assert ray_backend.Parallel is para_joblib.Parallel
    assert ray_backend.PicklingPool is para_joblib.pool.PicklingPool


def test_ray_listens_on_loopback_only(ray_instance):
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    listening = []
    for proc in _ray_processes():
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        listening += [c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN]
    assert listening, "ray's processes listen on no TCP port?"
    assert all(_is_loopback(ip) for ip in listening), sorted(set(listening))


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def test_list_of_tasks_runs_in_ray_actors(ray_instance):
    with joblib.parallel_config(backend="ray", n_jobs=2):
        backend, n_jobs = joblib.parallel.get_active_backend()
        assert type(backend).__name__ == "RayBackend"
        out = joblib.Parallel()(joblib.delayed(_where)(i) for i in range(20))
    assert [square for square, _, _ in out] == [i * i for i in range(20)]
    pids = {pid for _, pid, _ in out}
    actors = {actor for _, _, actor in out}
    assert os.getpid() not in pids
    # Every task ran inside one of ray's pool actors, at most two of them.
    assert None not in actors
    assert 1 <= len(actors) <= 2
    assert n_jobs == 2


def test_generator_output(ray_instance):
    # joblib 1.6 itself refuses return_as="generator" with ray's backend
    # (ValueError: the backend "does not support return_as=generator"): the
    # issue asks para to run it, and para can, its multiprocessing backend
    # returning results through callbacks.
    with joblib.parallel_config(backend="ray", n_jobs=2):
        gen = joblib.Parallel(return_as="generator")(
            joblib.delayed(_where)(i) for i in range(12)
        )
        assert not isinstance(gen, list)
        assert [square for square, _, _ in gen] == [i * i for i in range(12)]


def test_exception_in_a_task_reaches_the_caller(ray_instance):
    with joblib.parallel_config(backend="ray", n_jobs=2):
        with pytest.raises(ValueError, match="task 5 failed on purpose"):
            joblib.Parallel()(joblib.delayed(_fail_on)(i, 5) for i in range(10))
        # The pool is still usable after the failure.
        again = joblib.Parallel()(joblib.delayed(_fail_on)(i, -1) for i in range(4))
    assert again == [0, 1, 2, 3]


def test_large_numpy_argument(ray_instance):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((2_000, 2_000))  # 32 MB, above max_nbytes
    with joblib.parallel_config(backend="ray", n_jobs=2):
        out = joblib.Parallel()(joblib.delayed(_column_means)(X, j) for j in range(6))
    assert [j for j, _, _ in out] == list(range(6))
    np.testing.assert_allclose([m for _, m, _ in out], X[:, :6].mean(axis=0))


def test_ray_remote_args_reach_the_actors(ray_instance):
    args = {"runtime_env": {"env_vars": {"PARA_RAY_PROBE": "from-remote-args"}}}
    with joblib.parallel_config(backend="ray", n_jobs=2, ray_remote_args=args):
        out = joblib.Parallel()(
            joblib.delayed(_env_var)("PARA_RAY_PROBE") for _ in range(4)
        )
    assert out == ["from-remote-args"] * 4


def test_nothing_of_ray_is_left_after_shutdown(ray_instance):
    # Runs last in this file: shuts the instance down and checks that its
    # processes are gone and that it left nothing in /dev/shm.
    assert ray_instance["processes"], "ray.init started no process of its own?"
    ray.shutdown(wait_for_processes=True)
    deadline = time.monotonic() + 30
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [" ".join(p.cmdline())[:80] for p in _ray_processes()]
    assert not sorted(_shm() - ray_instance["shm_before"] - _others_since())


def _others_since() -> set[str]:
    # Other programs share /dev/shm: only entries ray or this process made
    # count (ray's plasma store, joblib/para memmapping folders of our pid).
    pid = str(os.getpid())
    return {
        name
        for name in _shm()
        if pid not in name and "plasma" not in name and "ray" not in name.lower()
    }
