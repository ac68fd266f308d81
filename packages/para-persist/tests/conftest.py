"""Shared fixtures; hides numpy when PARA_PERSIST_HIDE_NUMPY=1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

if os.environ.get("PARA_PERSIST_HIDE_NUMPY") == "1":

    class _NoNumpy:
        """Meta-path finder that makes ``import numpy`` fail."""

        def find_spec(self, name, path=None, target=None):
            if name == "numpy" or name.startswith("numpy."):
                raise ModuleNotFoundError(f"{name} hidden for this test run", name=name)
            return None

    sys.meta_path.insert(0, _NoNumpy())

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "quick",
    deadline=None,
    max_examples=30,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("PARA_PERSIST_HYPOTHESIS", "default"))


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("PARA_PERSIST_HIDE_NUMPY") == "1":
        assert "numpy" not in sys.modules, "numpy was imported despite being hidden"


@pytest.fixture(scope="session")
def joblib_files() -> Path:
    """Folder of files written by old joblib versions."""
    env = os.environ.get("PARA_JOBLIB_FILES")
    folder = (
        Path(env)
        if env
        else Path(__file__).resolve().parents[4] / "shared" / "joblib-files"
    )
    if not folder.is_dir():
        pytest.fail(
            f"joblib sample files not found at {folder}: set PARA_JOBLIB_FILES "
            "to the folder holding joblib_0.10.0_pickle_py33_np18.pkl & co."
        )
    return folder


@pytest.fixture
def folder(tmp_path: Path):
    """A temp folder checked to hold no stray temporary file afterwards."""
    yield tmp_path
    stray = [p.name for p in tmp_path.rglob("*.tmp")]
    assert not stray, f"temporary files left behind: {stray}"
