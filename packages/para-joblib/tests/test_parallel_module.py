"""joblib.parallel's module-level names that code assigns or reads."""

from __future__ import annotations

import pytest

import para_core
from para_joblib import parallel


def test_assigning_default_backend_sets_paras():
    # joblib's tests (and code restoring a default) assign the module name.
    before = parallel.DEFAULT_BACKEND
    try:
        parallel.register_parallel_backend(
            "threading", parallel.BACKENDS["threading"], make_default=True
        )
        assert type(parallel.get_active_backend()[0]).__name__ == "ThreadingBackend"
        parallel.DEFAULT_BACKEND = "loky"
        assert parallel.DEFAULT_BACKEND == para_core.DEFAULT_BACKEND == "loky"
        assert type(parallel.get_active_backend()[0]).__name__ == "LokyBackend"
        with pytest.raises(ValueError, match="registered backend"):
            parallel.DEFAULT_BACKEND = "no-such-backend"
    finally:
        parallel.DEFAULT_BACKEND = before


def test_backend_registries_are_joblibs_names():
    assert {"loky", "threading", "multiprocessing", "sequential"} <= set(
        parallel.BACKENDS
    )
    assert "dask" in parallel.EXTERNAL_BACKENDS
    assert parallel.BACKENDS is para_core.BACKENDS
