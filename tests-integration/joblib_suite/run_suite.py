"""Run the test-suite of the installed joblib wheel with para standing in.

Usage: ``python tests-integration/joblib_suite/run_suite.py [pytest args]``
prints a table of outcomes; ``test_joblib_suite.py`` asserts on them. The test
files are copied from the installed ``joblib`` package into a temporary folder
at run time (never into this repository); ``sitecustomize.py`` of this folder,
on ``PYTHONPATH``, makes every ``import joblib`` of the run (workers included)
resolve to ``para_joblib``.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def installed_joblib_dir() -> Path:
    spec = importlib.util.find_spec("joblib")
    if spec is None or spec.origin is None:
        raise RuntimeError("joblib is not installed: its test files are needed")
    return Path(spec.origin).parent


def prepare(root: Path) -> Path:
    """Copy joblib's tests and pytest helpers under ``root/joblib``."""
    source = installed_joblib_dir()
    target = root / "joblib"
    shutil.copytree(source / "test", target / "test")
    shutil.copy2(source / "testing.py", target / "testing.py")
    # Marks joblib/ as a package for pytest's naming (joblib.test.test_x);
    # the alias answers ``import joblib`` itself, so this file is never run.
    (target / "__init__.py").write_text("")
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n    thread_unsafe\n"
    )
    return target


def run(pytest_args: list[str] = (), timeout: float = 1500) -> dict:
    """Run the suite in a child process; return the plugin's JSON report."""
    with tempfile.TemporaryDirectory(prefix="para-joblib-suite-") as tmp:
        root = Path(tmp)
        target = prepare(root)
        report = root / "report.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(HERE), *filter(None, [env.get("PYTHONPATH")])]
        )
        env["PARA_JOBLIB_SUITE_TESTS"] = str(target)
        env["PARA_JOBLIB_SUITE_REPORT"] = str(report)
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            str(target / "test"),
            "-p",
            "para_suite_plugin",
            "-q",
            "--timeout=120",
            "--continue-on-collection-errors",
            "-o",
            "console_output_style=classic",
            *pytest_args,
        ]
        proc = subprocess.run(
            cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
        if not report.exists():
            raise RuntimeError(
                f"the joblib suite did not run:\n{proc.stdout[-3000:]}\n"
                f"{proc.stderr[-3000:]}"
            )
        result = json.loads(report.read_text())
        result["stdout"] = proc.stdout
        return result


def summarize(result: dict) -> dict:
    """Counts per test item and per test function (all its parametrisations)."""
    items = collections.Counter(e["outcome"] for e in result["outcomes"].values())
    functions: dict[str, str] = {}
    rank = {"collection error": 3, "failed": 2, "passed": 1, "xfailed": 0, "skipped": 0}
    for entry in result["outcomes"].values():
        name, outcome = entry["function"], entry["outcome"]
        if rank[outcome] >= rank.get(functions.get(name, "skipped"), 0):
            functions[name] = outcome
    deselected_functions = {k.split("[")[0] for k in result["deselected"]} - set(
        functions
    )
    per_function = collections.Counter(functions.values())
    ran = (
        per_function["passed"]
        + per_function["failed"]
        + per_function["collection error"]
    )
    return {
        "items": dict(items),
        "items_deselected": len(result["deselected"]),
        "functions": dict(per_function),
        "functions_deselected": len(deselected_functions),
        "share_passing": per_function["passed"] / ran if ran else 0.0,
        "failures": sorted(
            k
            for k, e in result["outcomes"].items()
            if e["outcome"] in rank and rank[e["outcome"]] >= 2
        ),
    }


def main(argv: list[str]) -> int:
    save = [a for a in argv if a.startswith("--save=")]
    argv = [a for a in argv if not a.startswith("--save=")]
    result = run(argv)
    if save:
        Path(save[0].split("=", 1)[1]).write_text(json.dumps(result, indent=1))
    summary = summarize(result)
    reasons = collections.Counter(result["deselected"].values())
    print("joblib test-suite with para standing in")
    items, dropped = summary["items"], summary["items_deselected"]
    print(f"  test items:     {items}, deselected {dropped}")
    print(
        f"  test functions: {summary['functions']}, wholly deselected "
        f"{summary['functions_deselected']}"
    )
    print(
        f"  share of remaining test functions passing: {summary['share_passing']:.1%}"
    )
    print("  deselected items by reason:")
    for reason, n in reasons.most_common():
        print(f"    {n:4d}  {reason}")
    for name in summary["failures"]:
        print(f"  FAILED {name}: {result['outcomes'][name].get('error', '')[-300:]}")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
