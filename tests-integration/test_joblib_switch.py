"""Acceptance: an unmodified scikit-learn program runs on para when opted in.

The program below imports scikit-learn first and never names para. With
``PARA_AS_JOBLIB=1`` in its environment, GridSearchCV(n_jobs=2) must run on
para_joblib: each fit, inside a worker process, records the joblib module it
sees and the class of the backend active there. Without the variable the
same program runs on the real joblib.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("sklearn")

PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.model_selection import GridSearchCV

    class Probe(ClassifierMixin, BaseEstimator):
        def __init__(self, c=1.0):
            self.c = c

        def fit(self, X, y):
            import joblib
            from joblib.parallel import get_active_backend

            backend, _ = get_active_backend()
            with open(os.environ["PROBE_LOG"], "a") as f:
                f.write(json.dumps({
                    "pid": os.getpid(),
                    "joblib": joblib.__name__,
                    "backend": type(backend).__module__ + "." + type(backend).__name__,
                    "real_joblib_loaded": any(
                        "site-packages/joblib/" in (getattr(m, "__file__", None) or "")
                        for m in list(sys.modules.values())
                    ),
                }) + "\\n")
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])

    if __name__ == "__main__":
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((60, 3)), rng.integers(0, 2, 60)
        search = GridSearchCV(Probe(), {"c": [0.1, 1.0, 10.0]}, cv=3, n_jobs=2)
        search.fit(X, y)
        import joblib
        print(json.dumps({
            "pid": os.getpid(),
            "joblib": joblib.__name__,
            "version": joblib.__version__,
            "n_results": len(search.cv_results_["params"]),
        }))
    """
)


def _run_program(tmp_path, opt_in: bool):
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    log = tmp_path / "probe.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "PARA_AS_JOBLIB"}
    env["PROBE_LOG"] = str(log)
    if opt_in:
        env["PARA_AS_JOBLIB"] = "1"
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    main = json.loads(proc.stdout.strip().splitlines()[-1])
    fits = [json.loads(line) for line in log.read_text().splitlines()]
    # Seen from the test's output (-s): what ran where.
    print(f"\nPARA_AS_JOBLIB={'1' if opt_in else 'unset'}: main {main}")
    for key in sorted(
        {(f["joblib"], f["backend"], f["real_joblib_loaded"]) for f in fits}
    ):
        pids = sorted(
            {
                f["pid"]
                for f in fits
                if (f["joblib"], f["backend"], f["real_joblib_loaded"]) == key
            }
        )
        where = "main" if pids == [main["pid"]] else "workers"
        print(
            f"  fits in {where} {pids}: joblib={key[0]} backend={key[1]}"
            f" real joblib loaded={key[2]}"
        )
    return main, fits


def test_gridsearch_runs_on_para_when_opted_in(tmp_path):
    main, fits = _run_program(tmp_path, opt_in=True)
    assert main["joblib"] == "para_joblib"
    assert main["version"] == "1.6.0"
    assert main["n_results"] == 3
    # 3 candidates x 3 folds + the refit in the main process
    workers = [f for f in fits if f["pid"] != main["pid"]]
    assert len(workers) == 9
    assert {f["joblib"] for f in fits} == {"para_joblib"}
    assert {f["backend"].split(".")[0] for f in fits} == {"para_core"}
    assert not any(f["real_joblib_loaded"] for f in fits)


def test_gridsearch_runs_on_joblib_without_the_opt_in(tmp_path):
    main, fits = _run_program(tmp_path, opt_in=False)
    assert main["joblib"] == "joblib"
    workers = [f for f in fits if f["pid"] != main["pid"]]
    assert len(workers) == 9
    assert {f["joblib"] for f in fits} == {"joblib"}
    assert {f["backend"].split(".")[0] for f in fits} == {"joblib"}


def test_scikit_learn_version_gate_takes_joblib_1_6_paths(tmp_path):
    # sklearn gates code on parse_version(joblib.__version__) (e.g. its
    # column transformer tests skip below joblib 1.3): with para standing in,
    # the comparison must see the joblib API level para implements.
    code = (
        "import joblib\n"
        "from sklearn.utils.fixes import parse_version\n"
        "print(joblib.__name__, joblib.__version__,"
        " parse_version(joblib.__version__) >= parse_version('1.3'),"
        " parse_version(joblib.__version__) < parse_version('1.7'))\n"
    )
    env = {**os.environ, "PARA_AS_JOBLIB": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["para_joblib", "1.6.0", "True", "True"]
