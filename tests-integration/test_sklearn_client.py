"""A scikit-learn-style client with para_joblib standing in for joblib.

The estimator below uses joblib the way scikit-learn does: ``Parallel`` with
``prefer="threads"``, ``effective_n_jobs``, ``Memory`` through a
``check_memory``-like helper, ``dump(compress=3)``, and ``from joblib import
logger``.
"""

from __future__ import annotations

import numbers

import numpy as np
import pytest

import para_joblib as joblib
from para_joblib import logger


def check_memory(memory):
    """scikit-learn's contract: None, a location, or a Memory-like object."""
    if (
        memory is None
        or isinstance(memory, str | bytes)
        or hasattr(memory, "__fspath__")
    ):
        return joblib.Memory(location=memory, verbose=0)
    if not hasattr(memory, "cache"):
        raise ValueError(
            "'memory' should be None, a string or have the same interface as "
            f"joblib.Memory. Got memory='{memory}' instead."
        )
    return memory


def _fit_one_target(X, Y, j):
    coef, *_ = np.linalg.lstsq(X, Y[:, j], rcond=None)
    return j, coef


def _center(X):
    return X - X.mean(axis=0)


class PerTargetRegressor:
    """Fits one least-squares regression per target column, in threads."""

    def __init__(self, n_jobs=None, memory=None, verbose=0):
        self.n_jobs = n_jobs
        self.memory = memory
        self.verbose = verbose

    def fit(self, X, Y):
        memory = check_memory(self.memory)
        Xc = memory.cache(_center)(X)
        Yc = Y - Y.mean(axis=0)
        n_jobs = joblib.effective_n_jobs(self.n_jobs)
        assert isinstance(n_jobs, numbers.Integral)
        out = joblib.Parallel(n_jobs=n_jobs, prefer="threads", verbose=self.verbose)(
            joblib.delayed(_fit_one_target)(Xc, Yc, j) for j in range(Y.shape[1])
        )
        self.coef_ = np.column_stack([coef for _, coef in sorted(out, key=_first)])
        self.n_jobs_used_ = n_jobs
        return self

    def predict(self, X):  # centred data only: enough for these tests
        return X @ self.coef_


def _first(pair):
    return pair[0]


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    X = rng.standard_normal((500, 6))
    coef = rng.standard_normal((6, 4))
    return X, X @ coef + 0.01 * rng.standard_normal((500, 4)), coef


@pytest.mark.parametrize("memory", [None, "location", "memory-object"])
def test_fit_predict_dump_load(tmp_path, data, memory):
    X, y, coef = data
    if memory == "location":
        memory = str(tmp_path / "cache")
    elif memory == "memory-object":
        memory = joblib.Memory(tmp_path / "cache2", verbose=0)
    est = PerTargetRegressor(n_jobs=2, memory=memory).fit(X, y)
    np.testing.assert_allclose(est.coef_, coef, atol=0.05)
    assert est.n_jobs_used_ == 2

    path = tmp_path / "model.joblib"
    assert [str(p) for p in joblib.dump(est, path, compress=3)] == [str(path)]
    restored = joblib.load(path)
    assert isinstance(restored, PerTargetRegressor)
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))


def test_refit_uses_the_cache(tmp_path, data):
    X, y, _ = data
    location = tmp_path / "cache"
    PerTargetRegressor(n_jobs=2, memory=str(location)).fit(X, y)
    memory = check_memory(str(location))
    assert memory.cache(_center).check_call_in_cache(X)


def test_check_memory_rejects_bad_values():
    with pytest.raises(ValueError, match="memory"):
        check_memory(42)


def test_effective_n_jobs_under_parallel_config():
    with joblib.parallel_config(n_jobs=3):
        assert joblib.effective_n_jobs(None) == 3
    assert joblib.effective_n_jobs(-1) == joblib.cpu_count()


def test_logger_helpers_scikit_learn_uses():
    assert logger.short_format_time(0.5).strip() == "0.5s"
    assert logger.short_format_time(90).strip() == "1.5min"
    printer = logger.Logger(depth=3, name="est")
    assert "est" in repr(printer) or printer.format([1, 2]) == "[1, 2]"


def test_real_scikit_learn_runs_on_para_joblib_threads(data):
    sklearn = pytest.importorskip("sklearn")
    from sklearn.ensemble import RandomForestRegressor

    X, Y, _ = data
    del sklearn
    with joblib.parallel_config(backend="threading", n_jobs=2):
        model = RandomForestRegressor(n_estimators=8, random_state=0).fit(X, Y[:, 0])
    path_free = joblib.hash(model)
    assert isinstance(path_free, str) and len(path_free) == 32


_SKLEARN_JOB = """
import importlib, json, sys, tempfile
if sys.argv[1] == "para":
    # para_joblib stands in for joblib before scikit-learn imports it.
    import para_joblib
    sys.modules["joblib"] = para_joblib
    for sub in ("parallel", "memory", "numpy_pickle", "hashing", "logger",
                "pool", "compressor"):
        sys.modules["joblib." + sub] = importlib.import_module("para_joblib." + sub)
import joblib
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

X, y = make_classification(300, 8, random_state=0)
scores = cross_val_score(
    RandomForestClassifier(10, random_state=0, n_jobs=2), X, y, cv=3, n_jobs=2
)
with tempfile.TemporaryDirectory() as cache:
    forest = RandomForestClassifier(10, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()), ("rf", forest)], memory=cache)
    search = GridSearchCV(pipe, {"rf__max_depth": [2, 4]}, cv=2, n_jobs=2).fit(X, y)
    with tempfile.TemporaryDirectory() as out:
        path = out + "/search.joblib"
        joblib.dump(search.best_estimator_, path, compress=3)
        again = joblib.load(path).predict(X).tolist()
print(json.dumps({
    "which": joblib.__name__,
    "scores": [round(float(s), 10) for s in scores],
    "best": search.best_params_,
    "predictions": again,
}))
"""


def test_scikit_learn_itself_runs_on_para_joblib():
    pytest.importorskip("sklearn")
    import json
    import subprocess
    import sys

    def run(which):
        proc = subprocess.run(
            [sys.executable, "-c", _SKLEARN_JOB, which],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    ours, theirs = run("para"), run("joblib")
    assert ours.pop("which") == "para_joblib"
    assert theirs.pop("which") == "joblib"
    assert ours == theirs
