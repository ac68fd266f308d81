"""mne's use of joblib, run by ``run_clients.py`` on para and on joblib.

mne publishes no test files: neither its wheel nor its source distribution
holds any, so its own parallel tests cannot be taken from the package index.
This file (para's, not mne's) drives mne's public helper ``parallel_func``
the ways mne's code relies on joblib: ``joblib.parallel.get_active_backend``
to see a ``parallel_config`` context, ``Parallel(...).n_jobs``,
``str(parallel._backend)`` to spot a local backend running one job,
``temp_folder`` / ``max_nbytes`` from mne's cache settings, and a real
multi-channel filter split over workers. Its name does not start with
``test_`` so that the integration suite, whose environment lacks mne, does not
collect it; ``run_clients.py`` passes it to pytest explicitly.
"""

from __future__ import annotations

import joblib
import numpy as np
import pytest

mne = pytest.importorskip("mne")
from mne.parallel import parallel_func  # noqa: E402


def _double(x):
    return 2 * x


def _row_sums(block):
    return block.sum(axis=1)


@pytest.fixture(autouse=True)
def _mne_settings(monkeypatch, tmp_path):
    # mne reads its settings from the environment first: keep its home
    # folder untouched and its parallel calls quiet.
    monkeypatch.setenv("MNE_DONTWRITE_HOME", "true")
    monkeypatch.setenv("_MNE_FAKE_HOME_DIR", str(tmp_path / "home"))
    monkeypatch.delenv("MNE_FORCE_SERIAL", raising=False)
    monkeypatch.delenv("MNE_CACHE_DIR", raising=False)
    mne.set_log_level("WARNING")


# Not "multiprocessing": mne wraps the function in a closure, which the
# standard library's pickler refuses on joblib as on para.
@pytest.mark.parametrize("backend", ["loky", "threading"])
def test_explicit_n_jobs_on_each_backend(backend):
    with joblib.parallel_config(backend=backend):
        parallel, fun, n_jobs = parallel_func(_double, n_jobs=2)
        assert n_jobs == 2
        assert parallel(fun(i) for i in range(7)) == [2 * i for i in range(7)]


def test_no_context_and_no_n_jobs_runs_serially():
    parallel, fun, n_jobs = parallel_func(_double, n_jobs=None)
    assert (parallel, fun, n_jobs) == (list, _double, 1)


def test_parallel_config_context_is_seen_through_get_active_backend():
    from joblib.parallel import get_active_backend

    _, outside = get_active_backend()
    with joblib.parallel_config(backend="threading", n_jobs=2):
        backend, inside = get_active_backend()
        parallel, fun, n_jobs = parallel_func(_double, n_jobs=None)
        assert inside == 2
        assert "ThreadingBackend" in type(backend).__name__
        assert n_jobs == 2
        assert parallel(fun(i) for i in range(5)) == [0, 2, 4, 6, 8]
    assert outside is None


@pytest.mark.parametrize(
    "backend, name",
    [("loky", "LokyBackend"), ("threading", "ThreadingBackend")],
)
def test_one_job_on_a_local_backend_takes_the_plain_path(backend, name):
    # mne reads str(parallel._backend) to skip joblib when only one job runs.
    with joblib.parallel_config(backend=backend, n_jobs=1):
        parallel, fun, n_jobs = parallel_func(_double, n_jobs=None)
    assert (parallel, fun, n_jobs) == (list, _double, 1)
    assert name in str(joblib.Parallel(n_jobs=1, backend=backend)._backend)


def test_all_cpus():
    _, _, n_jobs = parallel_func(_double, n_jobs=-1)
    assert n_jobs == joblib.cpu_count()


def test_max_jobs_caps_the_request():
    parallel, fun, n_jobs = parallel_func(_double, n_jobs=2, max_jobs=1)
    assert n_jobs == 1
    assert parallel(fun(i) for i in range(3)) == [0, 2, 4]


def test_cache_dir_memmaps_large_arrays_to_workers(monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("MNE_CACHE_DIR", str(cache))
    monkeypatch.setenv("MNE_MEMMAP_MIN_SIZE", "1K")
    data = np.arange(64 * 1000, dtype=np.float64).reshape(64, 1000)
    with joblib.parallel_config(backend="loky"):
        parallel, fun, n_jobs = parallel_func(_row_sums, n_jobs=2)
        blocks = np.array_split(data, 4)
        out = parallel(fun(block) for block in blocks)
    np.testing.assert_allclose(np.concatenate(out), data.sum(axis=1))
    assert n_jobs == 2


def test_filter_data_over_two_jobs_matches_one_job():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2000))
    kwargs = {"sfreq": 250.0, "l_freq": 1.0, "h_freq": 40.0, "verbose": False}
    serial = mne.filter.filter_data(x, n_jobs=1, **kwargs)
    two = mne.filter.filter_data(x, n_jobs=2, **kwargs)
    np.testing.assert_allclose(two, serial, rtol=1e-12, atol=1e-12)
    assert not np.allclose(two, x)


def test_parallel_errors_reach_the_caller():
    def boom(i):
        if i == 3:
            raise ValueError(f"bad channel {i}")
        return i

    parallel, fun, _ = parallel_func(boom, n_jobs=2)
    with pytest.raises(ValueError, match="bad channel 3"):
        parallel(fun(i) for i in range(6))
