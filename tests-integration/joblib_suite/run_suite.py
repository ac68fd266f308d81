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
sys.path.insert(0, str(HERE))  # para_suite_deselected, also read by the plugin


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
    # test_dask.py takes distributed's ``loop`` fixture from the conftest of
    # joblib's repository, which the wheel does not ship: the same fixtures
    # from distributed itself; only in test_dask.py's process (importing
    # distributed.utils_test takes seconds).
    (root / "conftest.py").write_text(
        "import os\n"
        "if os.environ.get('PARA_JOBLIB_SUITE_DASK') == '1':\n"
        "    try:\n"
        "        from distributed.utils_test import cleanup, loop, loop_in_thread\n"
        "    except ImportError:\n"
        "        pass\n"
    )
    (root / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\nmarkers =\n    thread_unsafe\n"
    )
    return target


def _ignored_files() -> list[str]:
    from para_suite_deselected import DESELECTED, SLOW_FILES

    files = [key for key in DESELECTED if "::" not in key]
    if os.environ.get("PARA_JOBLIB_SUITE_FULL") != "1":
        files += list(SLOW_FILES)
    return files


# Files run in a pytest process of their own: the long ones, where a crash
# or a hang would cost the most. The others share one process (pytest's
# start-up, with its plugins and para's imports, took longer than most of
# their tests); should that process end abnormally, they run again one
# process per file, so that the failure stays in its file.
_OWN_PROCESS = ("test_parallel.py", "test_dask.py")


def run(
    pytest_args: list[str] = (), timeout: float = 900, log_path: str | None = None
) -> dict:
    """Run the suite; return the merged reports of the plugin."""
    merged: dict = {"outcomes": {}, "deselected": {}, "stdout": ""}
    with tempfile.TemporaryDirectory(prefix="para-joblib-suite-") as tmp:
        root = Path(tmp)
        target = prepare(root)
        ignored = set(_ignored_files())
        files = sorted(
            p.name for p in (target / "test").glob("test_*.py") if p.name not in ignored
        )
        log = open(log_path or root / "pytest.log", "w")  # noqa: SIM115
        shared = [name for name in files if name not in _OWN_PROCESS]
        with log:
            if shared and not _run_files(
                root, target, shared, pytest_args, timeout, log, merged
            ):
                for name in shared:
                    _run_files(root, target, [name], pytest_args, timeout, log, merged)
            for name in files:
                if name in _OWN_PROCESS:
                    _run_files(root, target, [name], pytest_args, timeout, log, merged)
        merged["stdout"] = Path(log.name).read_text(errors="replace")
    return merged


_DIED = "the pytest process died during this test (see the log)"


def _run_files(
    root, target, names, pytest_args, timeout, log, merged, retried=False
) -> bool:
    """Run ``names`` in one pytest process; False if it ended abnormally
    with more than one file (nothing is recorded then: the caller runs them
    again one by one)."""
    name = names[0] if len(names) == 1 else f"{len(names)} files"
    report = root / f"report-{names[0]}-{len(names)}.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PARA_JOBLIB_SUITE_TESTS"] = str(target)
    env["PARA_JOBLIB_SUITE_REPORT"] = str(report)
    env["PARA_AS_JOBLIB"] = "1"  # para_joblib's switch, in every process
    env["PARA_JOBLIB_SUITE_DASK"] = "1" if "test_dask.py" in names else "0"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(str(target / "test" / n) for n in names),
        "-p",
        "para_suite_plugin",
        "-v",
        "--durations=5",
        "--timeout=120",
        "-o",
        "console_output_style=classic",
        *pytest_args,
    ]
    log.write(f"\n==== {' '.join(names)}\n")
    log.flush()
    try:
        code = subprocess.run(
            cmd,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        ).returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    if isinstance(code, int) and code < 0 and len(names) == 1 and not retried:
        # Killed by a signal: run once more and say so. The crashes seen
        # were a checkout's build rewriting the C accelerator under running
        # processes (fixed in para-core's hatch_build.py); a crash still
        # fails the run when the second one crashes too.
        log.write(f"\n==== {name}: CRASH, killed by signal {-code}; run again\n")
        merged.setdefault("crashes", []).append(f"{name}: signal {-code}")
        report.unlink(missing_ok=True)
        return _run_files(
            root, target, names, pytest_args, timeout, log, merged, retried=True
        )
    abnormal = code not in (0, 1, 5)
    if abnormal and len(names) > 1:
        log.write(f"\n==== {name}: ended abnormally (exit {code}), again one by one\n")
        return False
    running = []
    if report.exists():
        part = json.loads(report.read_text())
        # The plugin marks the test about to run; if the process died, that
        # one is named in the process's failure below, not counted as a test.
        for key, entry in part["outcomes"].items():
            if entry.get("error") == _DIED:
                running.append(key)
            else:
                merged["outcomes"][key] = entry
        merged["deselected"].update(part["deselected"])
    if abnormal or not report.exists():
        during = f" during {', '.join(running)}" if running else ""
        merged["outcomes"][f"{name}::<process>"] = {
            "function": f"{name}::<process>",
            "outcome": "failed",
            "error": f"pytest on {name} ended abnormally (exit {code}){during}; "
            "see its log",
        }
    return True


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
    ignored_files = _ignored_files()
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
        "files_ignored": ignored_files,
        "share_passing": per_function["passed"] / ran if ran else 0.0,
        "crashes": result.get("crashes", []),
        "failures": sorted(
            k
            for k, e in result["outcomes"].items()
            if e["outcome"] in rank and rank[e["outcome"]] >= 2
        ),
    }


def main(argv: list[str]) -> int:
    save = [a for a in argv if a.startswith("--save=")]
    log = [a.split("=", 1)[1] for a in argv if a.startswith("--log=")]
    argv = [a for a in argv if not a.startswith(("--save=", "--log="))]
    result = run(argv, log_path=log[0] if log else None)
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
    print(f"  files not run: {summary['files_ignored']}")
    for crash in summary["crashes"]:
        print(f"  CRASH, run again: {crash}")
    print("  deselected items by reason:")
    for reason, n in reasons.most_common():
        print(f"    {n:4d}  {reason}")
    for name in summary["failures"]:
        print(f"  FAILED {name}: {result['outcomes'][name].get('error', '')[-300:]}")
    return 0 if not summary["failures"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
