"""The switch: para_joblib standing in for ``joblib`` in a whole program.

Each test runs its program in a fresh interpreter: the switch changes the
import system of the process that turns it on, and this test process uses the
real joblib for comparisons.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

ENV = "PARA_AS_JOBLIB"


def _run(code: str, env_value: str | None = None, check: bool = True):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if env_value is not None:
        env[ENV] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


# Prints the names of the real joblib's modules loaded in this process: the
# switch promises none ever is.
REAL_JOBLIB_LOADED = """
def real_joblib_loaded():
    import sys
    return sorted(
        name for name, m in sys.modules.items()
        if "site-packages/joblib/" in (getattr(m, "__file__", None) or "")
    )
"""


def test_off_by_default_import_joblib_is_the_real_one():
    out = _run(
        "import sys, joblib; print(joblib.__name__, 'para_joblib' in sys.modules)"
    )
    assert out.stdout.split() == ["joblib", "False"]


@pytest.mark.parametrize("value", ["0", "", "off"])
def test_off_values_leave_joblib_alone(value):
    out = _run("import joblib; print(joblib.__name__)", env_value=value)
    assert out.stdout.strip() == "joblib"
    assert out.stderr == ""


def test_env_var_makes_every_joblib_import_para():
    out = _run(
        REAL_JOBLIB_LOADED
        + """
import joblib, para_joblib
import joblib.parallel, joblib.memory, joblib.numpy_pickle, joblib.hashing
from joblib.parallel import Parallel, delayed
from joblib.externals import loky
from joblib.externals.loky import get_reusable_executor
import joblib.externals.cloudpickle as cp
import loky as real_loky, cloudpickle
assert joblib is para_joblib
assert joblib.parallel is para_joblib.parallel
assert joblib.memory is para_joblib.memory
assert loky is real_loky and cp is cloudpickle
assert get_reusable_executor is real_loky.get_reusable_executor
# modules keep their own names (pickling, reload)
assert joblib.__name__ == "para_joblib" and joblib.__spec__.name == "para_joblib"
assert joblib.parallel.__spec__.name == "para_joblib.parallel"
assert loky.__spec__.name == "loky"
print(Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4)))
print(real_joblib_loaded())
""",
        env_value="1",
    )
    assert out.stdout.split("\n")[:2] == ["[0, 1, 2, 3]", "[]"]


def test_install_as_joblib_in_code_and_is_installed():
    out = _run(
        REAL_JOBLIB_LOADED
        + """
import os, sys, para_joblib
assert not para_joblib.is_installed()
para_joblib.install_as_joblib()
para_joblib.install_as_joblib()  # twice: nothing more
assert para_joblib.is_installed()
assert sum(type(f).__name__ == "_JoblibFinder" for f in sys.meta_path) == 1
import joblib
assert joblib is para_joblib
print(os.environ["PARA_AS_JOBLIB"], real_joblib_loaded())
"""
    )
    assert out.stdout.strip() == "1 []"


def test_later_sys_path_change_cannot_bring_the_real_joblib():
    # pytest puts the folder of a conftest.py living in site-packages first
    # on sys.path; the alias must not depend on the path order.
    out = _run(
        REAL_JOBLIB_LOADED
        + """
import importlib, sys, sysconfig
import para_joblib
para_joblib.install_as_joblib()
sys.path.insert(0, sysconfig.get_paths()["purelib"])
sys.meta_path.insert(0, sys.meta_path.pop())  # a finder pushed in front
importlib.invalidate_caches()
import joblib
from joblib.memory import Memory
from joblib import numpy_pickle
assert joblib is para_joblib and numpy_pickle is para_joblib.numpy_pickle
assert Memory is para_joblib.Memory
para_joblib.install_as_joblib()  # puts the alias back in front
assert type(sys.meta_path[0]).__name__ == "_JoblibFinder"
print(real_joblib_loaded())
"""
    )
    assert out.stdout.strip() == "[]"


def test_switching_on_after_the_real_joblib_is_a_clear_error():
    out = _run(
        """
import os, sys
import joblib
import para_joblib
try:
    para_joblib.install_as_joblib()
except para_joblib.JoblibAliasError as exc:
    print(exc)
assert not para_joblib.is_installed()
assert sys.modules["joblib"] is joblib and joblib.__name__ == "joblib"
assert "PARA_AS_JOBLIB" not in os.environ
"""
    )
    assert "the real joblib is already imported (joblib" in out.stdout
    assert "before importing joblib" in out.stdout


def test_unknown_env_value_warns_and_leaves_joblib_alone():
    out = _run("import joblib; print(joblib.__name__)", env_value="maybe")
    assert out.stdout.strip() == "joblib"
    assert "PARA_AS_JOBLIB='maybe' is not understood" in out.stderr


def test_a_module_para_does_not_provide_is_a_clear_import_error():
    out = _run(
        """
import joblib.no_such_module
""",
        env_value="1",
        check=False,
    )
    assert out.returncode == 1
    assert "ModuleNotFoundError: No module named 'joblib.no_such_module'" in out.stderr
    assert "para_joblib stands in for joblib" in out.stderr


def test_the_pth_file_is_installed_and_costs_nothing_when_off():
    files = [str(f) for f in metadata.files("para-joblib") or []]
    assert "para_joblib_as_joblib.pth" in files
    out = _run("import sys; print('para_joblib' in sys.modules)")
    assert out.stdout.strip() == "False"
    out = _run("import sys; print('para_joblib' in sys.modules)", env_value="1")
    assert out.stdout.strip() == "True"


# Worker processes: each reports the joblib it imports and the module a
# function of joblib's resolves to.
WORKER_PROBE = """
def probe(_):
    import sys
    import joblib
    from joblib import parallel
    files = sorted(
        n for n, m in sys.modules.items()
        if "site-packages/joblib/" in (getattr(m, "__file__", None) or "")
    )
    return joblib.__name__, parallel.__name__, files
"""


@pytest.mark.parametrize("how", ["env", "install"])
@pytest.mark.parametrize(
    "backend", ["loky", "multiprocessing", "multiprocessing-spawn", "memmapping-pool"]
)
def test_worker_processes_run_on_para_too(how, backend):
    code = (
        (
            "import para_joblib; para_joblib.install_as_joblib()\n"
            if how == "install"
            else ""
        )
        + WORKER_PROBE
        + f"""
import multiprocessing
import joblib
backend = {backend!r}
if backend == "memmapping-pool":
    with joblib.pool.MemmappingPool(2) as pool:
        out = pool.map(probe, range(2))
elif backend == "multiprocessing-spawn":
    ctx = multiprocessing.get_context("spawn")
    with joblib.parallel_config("multiprocessing", context=ctx):
        out = joblib.Parallel(n_jobs=2)(joblib.delayed(probe)(i) for i in range(2))
else:
    out = joblib.Parallel(n_jobs=2, backend=backend)(
        joblib.delayed(probe)(i) for i in range(2)
    )
print(sorted(set(repr(o) for o in out)))
"""
    )
    if backend == "multiprocessing-spawn":
        code = "if __name__ == '__main__':\n" + textwrap.indent(code, "    ")
        code = WORKER_PROBE + code
    out = _run(code, env_value="1" if how == "env" else None)
    assert out.stdout.strip() == repr(
        [repr(("para_joblib", "para_joblib.parallel", []))]
    )


def test_dask_workers_on_this_machine_run_on_para_too():
    pytest.importorskip("distributed")
    code = (
        "import para_joblib; para_joblib.install_as_joblib()\n"
        + WORKER_PROBE
        + """
if __name__ == "__main__":
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        print(client.submit(probe, 0).result())
"""
    )
    out = _run(code)
    assert out.stdout.strip().splitlines()[-1] == repr(
        ("para_joblib", "para_joblib.parallel", [])
    )


def test_pickles_naming_joblib_modules_load_on_para(tmp_path):
    # Written by the real joblib in a process without the switch.
    array_file = tmp_path / "array.pkl"
    ref_file = tmp_path / "refs.pkl"
    _run(
        f"""
import pickle
import numpy as np
import joblib
from joblib.hashing import Hasher
joblib.dump({{"a": np.arange(10.0)}}, {str(array_file)!r})
with open({str(ref_file)!r}, "wb") as f:
    pickle.dump([joblib.parallel.delayed, joblib.memory.Memory, Hasher], f)
"""
    )
    raw = array_file.read_bytes()
    assert b"joblib.numpy_pickle" in raw and b"NumpyArrayWrapper" in raw
    assert b"joblib.memory" in ref_file.read_bytes()
    out = _run(
        REAL_JOBLIB_LOADED
        + f"""
import pickle
import joblib, para_joblib
data = joblib.load({str(array_file)!r})
print(data["a"].sum())
with open({str(ref_file)!r}, "rb") as f:
    delayed, memory, hasher = pickle.load(f)
assert delayed is para_joblib.delayed
assert memory is para_joblib.Memory
assert hasher is para_joblib.hashing.Hasher
# and what para pickles by reference comes back as the same objects
assert pickle.loads(pickle.dumps(joblib.parallel.Parallel)) is joblib.Parallel
print(real_joblib_loaded())
""",
        env_value="1",
    )
    assert out.stdout.split("\n")[:2] == ["45.0", "[]"]


def test_pickles_from_a_switched_program_load_without_the_switch(tmp_path):
    target = tmp_path / "refs.pkl"
    _run(
        f"""
import pickle
import para_joblib; para_joblib.install_as_joblib()
import joblib
with open({str(target)!r}, "wb") as f:
    pickle.dump([joblib.delayed, joblib.Memory], f)
"""
    )
    import para_joblib

    with open(target, "rb") as f:
        delayed, memory = pickle.load(f)
    assert delayed is para_joblib.delayed
    assert memory is para_joblib.Memory
