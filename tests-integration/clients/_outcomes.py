"""pytest plugin of the clients' runs: every test's outcome, per file, as JSON.

``run_clients.py`` loads it with ``-p _outcomes`` into each pytest session it
starts and reads the file named by ``PARA_CLIENTS_REPORT`` afterwards. It
counts what pytest's own summary line counts (one test can count twice, e.g.
failed in its call and errored in its teardown), keyed by test id, and adds
which joblib the test process and its loky workers really ran: the proof that
a run meant for para did not quietly get the real joblib (or the reverse).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

_outcomes: dict[str, list[str]] = defaultdict(list)
_durations: dict[str, float] = defaultdict(float)


def _record(report, config) -> None:
    category = config.hook.pytest_report_teststatus(report=report, config=config)[0]
    if category:
        _outcomes[report.nodeid].append(category)


def pytest_runtest_logreport(report):
    _record(report, _config)
    _durations[report.nodeid.split("::")[0]] += report.duration


def pytest_collectreport(report):
    if report.failed:  # a file that fails to import counts as one error
        _outcomes[report.nodeid or "<session>"].append("error")


_config = None


def pytest_configure(config):
    global _config
    _config = config


def which_joblib() -> dict:
    """Where ``import joblib`` leads in this process, and if real joblib ran."""
    try:
        real = Path(importlib.metadata.distribution("joblib").locate_file("joblib"))
    except importlib.metadata.PackageNotFoundError:
        real = None
    import joblib

    def origin(module) -> str:
        return str(getattr(module, "__file__", None) or "")

    real_loaded = sorted(
        name
        for name, module in list(sys.modules.items())
        if real is not None and origin(module).startswith(str(real) + os.sep)
    )
    return {
        "pid": os.getpid(),
        "joblib": getattr(joblib, "__name__", "?"),
        "file": origin(joblib),
        "real_joblib_modules": real_loaded,
    }


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("PARA_CLIENTS_REPORT")
    if not path:
        return
    probe: dict = {"main": which_joblib(), "workers": []}
    try:
        import joblib

        # Worker processes must see the same joblib as the test process.
        probe["workers"] = joblib.Parallel(n_jobs=2, backend="loky")(
            joblib.delayed(which_joblib)() for _ in range(4)
        )
    except Exception as exc:  # reported, and fails the comparison
        probe["workers_error"] = f"{type(exc).__name__}: {exc}"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(
            {
                "exitstatus": int(exitstatus),
                "outcomes": _outcomes,
                "durations": _durations,
                "probe": probe,
            },
            f,
            indent=1,
        )
