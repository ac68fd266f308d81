"""The meta-package's public face: joblib's names, loaded lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import joblib
import pytest
from _helpers import run_python

import para_joblib

SUBMODULES = [
    "compressor",
    "hashing",
    "logger",
    "memory",
    "numpy_pickle",
    "parallel",
    "pool",
]

# Modules that ``import para_joblib`` alone must not load.
HEAVY = [
    "numpy",
    "loky",
    "cloudpickle",
    "para_core",
    "para_memmap",
    "para_persist",
    "para_cache",
    "xxhash",
    "zstandard",
    "lz4",
    "dask",
    "distributed",
    "tqdm",
    "fsspec",
    "concurrent.futures",
]


def test_import_loads_no_heavy_module():
    out = run_python(
        f"""
        import sys
        import para_joblib
        from para_joblib import logger, parallel, memory, numpy_pickle
        from para_joblib import hashing, pool, compressor
        heavy = {HEAVY!r}
        print(sorted(m for m in heavy if m in sys.modules))
        """
    )
    assert out.strip() == "[]"


def test_importtime_of_para_joblib_is_its_own_modules_only():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import para_joblib"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "para_joblib" in imported
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_all_is_joblib_all():
    assert set(para_joblib.__all__) >= set(joblib.__all__)
    assert len(para_joblib.__all__) == len(set(para_joblib.__all__))


# Signatures are compared with joblib's in tests-integration/test_api_surface.py.
@pytest.mark.parametrize("name", sorted(joblib.__all__))
def test_every_name_resolves_to_a_callable(name):
    assert callable(getattr(para_joblib, name)), name


def test_names_come_from_the_owning_packages():
    import para_cache
    import para_core
    import para_persist

    assert para_joblib.Parallel is para_core.Parallel
    assert para_joblib.delayed is para_core.delayed
    assert para_joblib.parallel_config is para_core.parallel_config
    assert para_joblib.Memory is para_cache.Memory
    assert para_joblib.hash is para_cache.hash
    assert para_joblib.dump is para_persist.dump
    assert para_joblib.load is para_persist.load


def test_resolved_names_are_cached_in_the_module():
    para_joblib.Memory
    assert "Memory" in vars(para_joblib)


def test_unknown_name_raises_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="no_such_thing"):
        para_joblib.no_such_thing
    with pytest.raises(AttributeError, match="nope"):
        para_joblib.parallel.nope
    assert not hasattr(para_joblib, "Hasher_of_nothing")


def test_dir_lists_public_names_and_submodules():
    listing = dir(para_joblib)
    assert set(joblib.__all__) <= set(listing)
    assert set(SUBMODULES) <= set(listing)


@pytest.mark.parametrize("module", SUBMODULES)
def test_submodule_names_resolve(module):
    mod = importlib.import_module(f"para_joblib.{module}")
    assert getattr(para_joblib, module) is mod
    assert mod.__all__
    for name in mod.__all__:
        assert getattr(mod, name) is not None, name
        assert name in dir(mod)


def test_star_import_gives_every_public_name():
    namespace: dict = {}
    exec("from para_joblib import *", namespace)
    assert set(joblib.__all__) <= set(namespace)


def test_first_use_of_parallel_enables_memmap_transport():
    out = run_python(
        """
        import sys
        import para_joblib
        assert "para_memmap" not in sys.modules
        para_joblib.Parallel
        import para_core
        hook = para_core.get_transport_hook()
        print(type(hook).__module__.split(".")[0])
        """
    )
    assert out.strip() == "para_memmap"


def test_memory_alone_does_not_load_the_parallel_stack():
    out = run_python(
        """
        import sys
        import para_joblib
        para_joblib.Memory
        para_joblib.dump
        print(sorted(m for m in ("loky", "para_core", "para_memmap")
                     if m in sys.modules))
        """
    )
    assert out.strip() == "[]"


def test_concurrent_first_use_enables_the_transport_once():
    out = run_python(
        """
        import threading
        import para_joblib
        from para_joblib import _lazy

        calls = []
        import para_memmap
        real_enable = para_memmap.enable
        def counting_enable(*args, **kwargs):
            calls.append(1)
            return real_enable(*args, **kwargs)
        para_memmap.enable = counting_enable

        barrier = threading.Barrier(8)
        def first_use():
            barrier.wait()
            para_joblib.Parallel
        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(len(calls), para_memmap.is_enabled())
        """
    )
    assert out.split() == ["1", "True"]


def test_pool_submodule_gives_a_working_memmapping_pool():
    from para_joblib.pool import MemmappingPool

    with MemmappingPool(2) as pool:
        assert pool.map(abs, [-1, -2, -3]) == [1, 2, 3]
