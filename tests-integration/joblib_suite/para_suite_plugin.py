"""pytest plugin of the joblib-suite runner: deselects the documented tests and
records every outcome in the JSON file named by ``PARA_JOBLIB_SUITE_REPORT``."""

from __future__ import annotations

import json
import os

import pytest

_REPORT_ENV = "PARA_JOBLIB_SUITE_REPORT"

_outcomes: dict[str, dict] = {}
_deselected: dict[str, str] = {}


def _key(item) -> tuple[str, str]:
    """('test_x.py::test_f', 'test_x.py::test_f[param]') of a collected item."""
    file = os.path.basename(str(item.path))
    cls = f"{item.cls.__name__}::" if getattr(item, "cls", None) else ""
    function = f"{file}::{cls}{getattr(item, 'originalname', item.name)}"
    return function, f"{file}::{cls}{item.name}"


def pytest_collection_modifyitems(config, items):
    from para_suite_deselected import DESELECTED as reasons

    keep, drop = [], []
    for item in items:
        function, full = _key(item)
        reason = reasons.get(full, reasons.get(function))
        if reason is None:
            keep.append(item)
        else:
            drop.append(item)
            _deselected[full] = reason
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def _write_report() -> None:
    with open(os.environ[_REPORT_ENV], "w", encoding="utf-8") as f:
        json.dump({"outcomes": _outcomes, "deselected": _deselected}, f, indent=1)


def pytest_runtest_logstart(nodeid, location):
    # Written before each test, with that test marked as the one running:
    # should the process die (a crash, a kill), the outcomes so far are kept
    # and the test that was running is the one reported as failed.
    file = os.path.basename(location[0])
    name = nodeid.split("::", 1)[1]
    full = f"{file}::{name}"
    _outcomes[full] = {
        "function": full.split("[")[0],
        "outcome": "failed",
        "error": "the pytest process died during this test (see the log)",
    }
    _write_report()
    _outcomes[full] = {"function": full.split("[")[0], "outcome": "passed"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    function, full = _key(item)
    entry = _outcomes.setdefault(full, {"function": function, "outcome": "passed"})
    if report.failed:
        entry["outcome"] = "failed"
        entry.setdefault("error", str(report.longrepr)[-1500:])
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else "skipped"


def pytest_collectreport(report):
    if report.failed:
        _outcomes[report.nodeid] = {
            "function": report.nodeid,
            "outcome": "collection error",
            "error": str(report.longrepr)[-1500:],
        }


def pytest_sessionfinish(session):
    _write_report()
