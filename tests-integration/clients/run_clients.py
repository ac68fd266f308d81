"""Run joblib's clients' own tests on para and on joblib; compare file by file.

scikit-learn, nilearn and imbalanced-learn ship their tests inside their
wheels: this script takes the test files of theirs that exercise joblib from
the installed packages (nothing is copied into this repository), and runs each
client's selection twice in the same run, in fresh pytest sessions: once with
para standing in for joblib (the ``PARA_AS_JOBLIB`` switch, honoured at
interpreter start in the test process and in every worker) and once with the
real joblib. It prints, per file, the counts of passed, failed, skipped,
xfailed, xpassed and errored tests of both runs and their times, and exits
non-zero when any count differs, when a run crashed, when the para run reached
the real joblib (in the test process or in a worker), or when a run left
processes or shared-memory / temporary files behind.

Usage (inside the ``clients`` hatch environment)::

    python tests-integration/clients/run_clients.py [--only CLIENT ...]
        [--mode both|para|joblib] [--jobs N] [--json PATH] [--keep-logs DIR]

A pitfall this avoids: when a client's ``conftest.py`` sits in site-packages,
pytest's default import mode puts site-packages first on ``sys.path``; an alias
made of ``sys.path`` order would then hand the test process the real joblib
and its workers para. The switch works through an import hook instead, and
every run checks where ``import joblib`` led (``_outcomes.which_joblib``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
CATEGORIES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")
# The environment variable of para_joblib's switch (see the migrating page).
SWITCH = "PARA_AS_JOBLIB"


@dataclass(eq=False)  # hashed by identity: a key of the results
class Client:
    """One client package and the test files of its own that touch joblib."""

    name: str
    package: str  # import name, whose folder holds the test files
    files: list[str]  # relative to the folder holding the package
    deselect: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    # The folder the files are relative to, when not the package's own.
    root: Path | None = None


CLIENTS = [
    Client(
        "scikit-learn",
        "sklearn",
        [
            # Parallel / delayed / parallel_config wrappers, config propagation
            # to workers, threadpool limits inside workers.
            "sklearn/utils/tests/test_parallel.py",
            # cross_validate & co.: Parallel(n_jobs) over folds, error scores.
            "sklearn/model_selection/tests/test_validation.py",
            # GridSearchCV / RandomizedSearchCV with n_jobs, pickled results.
            "sklearn/model_selection/tests/test_search.py",
            # Forests: Parallel(prefer="threads"), require="sharedmem".
            "sklearn/ensemble/tests/test_forest.py",
            # Pipeline(memory=...): joblib.Memory, check_memory.
            "sklearn/tests/test_pipeline.py",
        ],
    ),
    Client(
        "nilearn",
        "nilearn",
        [
            # CacheMixin / cache(): joblib.Memory, MemorizedFunc, levels.
            "nilearn/_utils/tests/test_cache_mixin.py",
            # joblib.hash of images (stable across calls, changes with data).
            "nilearn/_utils/tests/test_niimg.py",
            # Maskers' memory= argument: Memory objects and locations.
            "nilearn/maskers/tests/test_masker_validation.py",
            # ReNA clustering cached through joblib.Memory.
            "nilearn/regions/tests/test_rena_clustering.py",
            # permuted_ols: Parallel(n_jobs=2 / -1) over permutations.
            "nilearn/mass_univariate/tests/test_permuted_least_squares.py",
            # MultiNiftiMasker: Parallel over images, n_jobs.
            "nilearn/maskers/tests/test_multi_nifti_masker.py",
        ],
    ),
    Client(
        "imbalanced-learn",
        "imblearn",
        [
            # Pipeline(memory=...) through joblib.Memory.
            "imblearn/tests/test_pipeline.py",
            # Ensembles fitted with Parallel over estimators, n_jobs=3 / -1
            # (of test_bagging.py, only its test that sets n_jobs: the 160
            # others fit serially and would only add minutes).
            "imblearn/ensemble/tests/test_bagging.py::test_estimator",
            "imblearn/ensemble/tests/test_easy_ensemble.py",
            "imblearn/ensemble/tests/test_forest.py",
        ],
    ),
    # mne ships no tests (neither in its wheel nor in its sdist): para's own
    # file drives mne.parallel.parallel_func and a filter over workers.
    Client("mne", "mne", ["check_mne_parallel.py"], root=HERE),
]


# ------------------------------------------------------------------- one run
@dataclass
class Run:
    """One pytest session of one client in one mode."""

    client: Client
    mode: str  # "para" or "joblib"
    seconds: float = 0.0
    returncode: int | None = None
    report: dict | None = None
    log: str = ""
    leaks: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """File -> category -> count, as pytest's summary line counts them."""
        table: dict[str, dict[str, int]] = {}
        for nodeid, categories in (self.report or {}).get("outcomes", {}).items():
            per_file = table.setdefault(
                nodeid.split("::")[0], dict.fromkeys(CATEGORIES, 0)
            )
            for category in categories:
                per_file[category if category in per_file else "error"] += 1
        return table

    def outcomes(self) -> dict[str, list[str]]:
        return (self.report or {}).get("outcomes", {})

    def durations(self) -> dict[str, float]:
        return (self.report or {}).get("durations", {})


def _package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            f"{package} is not installed here: run this script in the 'clients' "
            "hatch environment (hatch run clients:run)."
        )
    return Path(next(iter(spec.submodule_search_locations))).parent


def _environment(mode: str, scratch: Path, report: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(SWITCH, None)
    if mode == "para":
        env[SWITCH] = "1"
    # The plugin must be importable by the test process and by the workers,
    # which import it to answer the probe.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), env.get("PYTHONPATH", "")) if p
    )
    env["PARA_CLIENTS_REPORT"] = str(report)
    # A private temporary folder: whatever is left in it is a leak.
    env["TMPDIR"] = str(scratch / "tmp")
    env.setdefault("SKLEARN_SKIP_NETWORK_TESTS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _watch(proc: subprocess.Popen, seen: dict[int, float], done: threading.Event):
    # Remember every process the session starts, to check afterwards that
    # none outlives it (loky and multiprocessing workers, resource trackers).
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:
        return
    while not done.is_set():
        try:
            for child in root.children(recursive=True):
                seen.setdefault(child.pid, child.create_time())
        except psutil.Error:
            pass
        done.wait(0.25)


def _leftovers(scratch: Path, pids: dict[int, float]) -> list[str]:
    deadline = time.monotonic() + 15
    alive: list[str] = []
    while True:
        alive = []
        for pid, created in pids.items():
            try:
                proc = psutil.Process(pid)
                if (
                    proc.create_time() == created
                    and proc.status() != psutil.STATUS_ZOMBIE
                ):
                    alive.append(f"process {pid}: {' '.join(proc.cmdline())[:160]}")
            except psutil.Error:
                pass
        if not alive or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    leaks = alive
    shm = Path("/dev/shm")
    if shm.is_dir():
        for entry in shm.iterdir():
            if any(
                f"_{pid}_" in entry.name or f"-{pid}-" in entry.name for pid in pids
            ):
                leaks.append(f"/dev/shm/{entry.name}")
    tmp = scratch / "tmp"
    if tmp.is_dir():
        leaks += [f"$TMPDIR/{entry.name}" for entry in tmp.iterdir()]
    return leaks


def run_session(
    client: Client, mode: str, timeout: float, keep_logs: Path | None
) -> Run:
    """Run one client's files in a fresh pytest session and read the outcomes."""
    run = Run(client, mode)
    _package_root(client.package)  # installed, or a clear error
    root = client.root or _package_root(client.package)
    scratch = Path(tempfile.mkdtemp(prefix=f"para-clients-{client.package}-{mode}-"))
    try:
        (scratch / "tmp").mkdir()
        (scratch / "cwd").mkdir()
        report = scratch / "report.json"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            # Our own minimal configuration, not this repository's nor any
            # found above site-packages; the client's conftest.py files load
            # because confcutdir is site-packages.
            "-c",
            str(HERE / "pytest-clients.ini"),
            "--rootdir",
            str(root),
            "--confcutdir",
            str(root),
            "--basetemp",
            str(scratch / "basetemp"),
            "-p",
            "_outcomes",
            "-p",
            "no:cacheprovider",
            "-q",
            *[str(root / f) for f in client.files],
            *[f"--deselect={root / d}" for d in client.deselect],
            *client.extra_args,
        ]
        seen: dict[int, float] = {}
        done = threading.Event()
        start = time.perf_counter()
        with open(scratch / "log.txt", "w") as log:
            proc = subprocess.Popen(
                cmd,
                cwd=scratch / "cwd",
                env=_environment(mode, scratch, report),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            watcher = threading.Thread(
                target=_watch, args=(proc, seen, done), daemon=True
            )
            watcher.start()
            try:
                run.returncode = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    child.kill()
                proc.kill()
                proc.wait()
                run.returncode = None
            done.set()
            watcher.join()
        run.seconds = time.perf_counter() - start
        run.log = (scratch / "log.txt").read_text(errors="replace")
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            (keep_logs / f"{client.package}-{mode}.log").write_text(run.log)
        if report.exists():
            run.report = json.loads(report.read_text())
        shutil.rmtree(scratch / "basetemp", ignore_errors=True)
        shutil.rmtree(scratch / "cwd", ignore_errors=True)
        run.leaks = _leftovers(scratch, seen)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return run


# --------------------------------------------------------------- comparison
def _probe_problems(run: Run) -> list[str]:
    """Did the run's test process and workers use the joblib it was meant to?"""
    if run.report is None:
        return ["no report: the session crashed or timed out"]
    probe = run.report.get("probe", {})
    problems = []
    if "workers_error" in probe:
        problems.append(f"worker probe failed: {probe['workers_error']}")
    for where, answer in [("test process", probe.get("main"))] + [
        (f"worker {a.get('pid')}", a) for a in probe.get("workers", [])
    ]:
        if not answer:
            problems.append(f"{where}: no answer")
            continue
        if run.mode == "para":
            if answer["joblib"] != "para_joblib" or answer["real_joblib_modules"]:
                problems.append(
                    f"{where} ran the real joblib: joblib is {answer['joblib']} "
                    f"({answer['file']}), real modules loaded: "
                    f"{answer['real_joblib_modules'][:5]}"
                )
        elif answer["joblib"] != "joblib" or not answer["real_joblib_modules"]:
            problems.append(f"{where} did not run the real joblib: {answer}")
    return problems


def _fmt(counts: dict[str, int]) -> str:
    text = f"{counts['passed']}/{counts['failed']}/{counts['skipped']}"
    extra = [
        f"{counts[c]}{c[:2]}" for c in ("xfailed", "xpassed", "error") if counts[c]
    ]
    return text + (" +" + ",".join(extra) if extra else "")


def compare(para: Run | None, joblib: Run | None) -> tuple[list[dict], list[str]]:
    """Rows of the table, and the problems that fail the step."""
    problems: list[str] = []
    for run in (para, joblib):
        if run is None:
            continue
        for problem in _probe_problems(run):
            problems.append(f"{run.client.name} [{run.mode}]: {problem}")
    if para is not None:
        # Processes and shared memory named after the session's processes
        # must never outlive it on para. Some clients' tests leave temporary
        # folders of their own (mkdtemp without cleanup): para may not leave
        # more than joblib does.
        ours = [leak for leak in para.leaks if not leak.startswith("$TMPDIR/")]
        theirs = [
            leak
            for leak in (joblib.leaks if joblib else [])
            if leak.startswith("$TMPDIR/")
        ]
        ours_tmp = [leak for leak in para.leaks if leak.startswith("$TMPDIR/")]
        if joblib is not None and len(ours_tmp) > len(theirs):
            ours += ours_tmp
        problems += [f"{para.client.name} [para] left behind: {leak}" for leak in ours]
    runs = [r for r in (para, joblib) if r is not None]
    files = sorted(
        {f for r in runs for f in r.counts()}
        | {f.split("::")[0] for f in runs[0].client.files}
    )
    rows = []
    for name in files:
        row = {"client": runs[0].client.name, "file": name}
        for run in runs:
            row[run.mode] = run.counts().get(name, dict.fromkeys(CATEGORIES, 0))
            row[f"{run.mode}_s"] = round(run.durations().get(name, 0.0), 2)
        if para is not None and joblib is not None:
            row["equal"] = row["para"] == row["joblib"]
            if not row["equal"]:
                problems.append(
                    f"{name}: para {_fmt(row['para'])} != joblib {_fmt(row['joblib'])}"
                )
        rows.append(row)
    if para is not None and joblib is not None:
        ours, theirs = para.outcomes(), joblib.outcomes()
        for nodeid in sorted(set(ours) | set(theirs)):
            if ours.get(nodeid) != theirs.get(nodeid):
                para_says, joblib_says = ours.get(nodeid), theirs.get(nodeid)
                problems.append(f"  {nodeid}: para {para_says} vs joblib {joblib_says}")
    return rows, problems


def print_table(rows: list[dict], runs: list[Run]) -> None:
    print()
    print("passed/failed/skipped (+xfailed,xpassed,errors) per file; seconds in tests")
    header = (
        f"{'client':<17}{'file':<52}{'para':>16}{'joblib':>16}"
        f"{'para s':>9}{'joblib s':>9}  same"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        para = _fmt(row["para"]) if "para" in row else "-"
        lib = _fmt(row["joblib"]) if "joblib" in row else "-"
        same = {True: "yes", False: "NO", None: "-"}[row.get("equal")]
        short = row["file"].split("/", 1)[1] if "/" in row["file"] else row["file"]
        print(
            f"{row['client']:<17}{short:<52}{para:>16}{lib:>16}"
            f"{row.get('para_s', 0):>9.1f}{row.get('joblib_s', 0):>9.1f}  {same}"
        )
    print()
    for run in runs:
        print(
            f"session {run.client.name} [{run.mode}]: {run.seconds:.1f}s wall, "
            f"exit {run.returncode}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="client names or import names")
    parser.add_argument("--mode", choices=("both", "para", "joblib"), default="both")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="pytest sessions at once (default 2: para and joblib side by side)",
    )
    parser.add_argument("--timeout", type=float, default=1500, help="per session, s")
    parser.add_argument("--json", type=Path, help="write the table as JSON")
    parser.add_argument("--keep-logs", type=Path, help="keep each session's output")
    args = parser.parse_args(argv)

    clients = [
        c
        for c in CLIENTS
        if not args.only or c.name in args.only or c.package in args.only
    ]
    modes = ["para", "joblib"] if args.mode == "both" else [args.mode]
    jobs = [(c, m) for c in clients for m in modes]
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            job: pool.submit(run_session, *job, args.timeout, args.keep_logs)
            for job in jobs
        }
        results = {job: future.result() for job, future in futures.items()}
    # A session killed by a signal is run once more, and said loudly: one
    # crash must not hide the comparison of every other file, nor pass
    # unnoticed. (The segmentation faults once seen in scikit-learn sessions
    # were the checkout's build rewriting the C accelerator under them,
    # fixed in para-core's hatch_build.py.)
    crashes = []
    for job, run in list(results.items()):
        if run.returncode is not None and run.returncode < 0:
            signal_number = -run.returncode
            crashes.append(f"{job[0].name} [{job[1]}] killed by signal {signal_number}")
            results[job] = run_session(*job, args.timeout, args.keep_logs)

    rows, problems = [], []
    for client in clients:
        para, joblib = results.get((client, "para")), results.get((client, "joblib"))
        client_rows, client_problems = compare(para, joblib)
        rows += client_rows
        problems += client_problems
    print_table(rows, list(results.values()))
    for run in results.values():
        if run.leaks:
            name, n = f"{run.client.name} [{run.mode}]", len(run.leaks)
            print(f"note: {name} left {n}: {run.leaks[:6]}")
    print(f"total wall time {time.perf_counter() - start:.1f}s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    for crash in crashes:
        print(f"CRASH, run again: {crash}")
    crashed = [r for r in results.values() if r.returncode not in (0, 1)]
    for run in crashed:
        tail = "\n".join(run.log.splitlines()[-30:])
        name = f"{run.client.name} [{run.mode}]"
        problems.append(f"{name} exited {run.returncode}; output ends:\n{tail}")
    if problems:
        print("\nDIFFERENCES / PROBLEMS:")
        for problem in problems:
            print(problem)
        return 1
    print("\nclients: every file has the same counts on para as on joblib")
    return 0


if __name__ == "__main__":
    sys.exit(main())
