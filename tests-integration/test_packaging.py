"""Package metadata: each distribution declares exactly what it needs."""

from __future__ import annotations

import importlib
import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PACKAGES = Path(__file__).resolve().parents[1] / "packages"

# Distribution -> the requirements it needs without any extra.
REQUIRED = {
    "para-persist": set(),
    "para-core": {"loky", "cloudpickle"},
    "para-memmap": {"para-core", "numpy"},
    "para-cache": {"para-persist"},
    "para-joblib": {"para-core", "para-memmap", "para-persist", "para-cache"},
}

EXTRAS = {
    "para-persist": {"numpy", "lz4", "zstd"},
    "para-core": {"dask", "progress"},
    "para-cache": {"fast-hash", "fsspec"},
}


def _requirements(dist: str) -> list[Requirement]:
    return [Requirement(r) for r in metadata.requires(dist) or []]


@pytest.mark.parametrize("dist", sorted(REQUIRED))
def test_required_dependencies_are_exactly_the_declared_ones(dist):
    required = {
        req.name.lower()
        for req in _requirements(dist)
        if req.marker is None or "extra" not in str(req.marker)
    }
    assert required == REQUIRED[dist]


@pytest.mark.parametrize("dist", sorted(REQUIRED))
def test_every_requirement_has_a_lower_bound(dist):
    for req in _requirements(dist):
        assert any(spec.operator in (">=", "~=", "==") for spec in req.specifier), (
            f"{dist}: requirement {req} has no lower bound"
        )


@pytest.mark.parametrize("dist", sorted(EXTRAS))
def test_optional_extras_are_declared(dist):
    provided = set(metadata.metadata(dist).get_all("Provides-Extra") or [])
    assert EXTRAS[dist] <= provided


@pytest.mark.parametrize("dist", sorted(REQUIRED))
def test_metadata_and_layout(dist):
    meta = metadata.metadata(dist)
    import_name = dist.replace("-", "_")
    module = importlib.import_module(import_name)
    # para_joblib.__version__ is the joblib API level it implements (what
    # clients comparing joblib.__version__ must see); its release is
    # para_version.
    own = module.para_version if import_name == "para_joblib" else module.__version__
    assert meta["Version"] == own
    assert re.fullmatch(r"\d+\.\d+\.\d+", own)
    assert meta["License-Expression"] == "BSD-3-Clause"
    assert meta["Requires-Python"] == ">=3.10"
    assert isinstance(module.__all__, list | tuple) and module.__all__
    for name in module.__all__:
        assert hasattr(module, name), f"{import_name}.__all__ names missing {name}"
    src = PACKAGES / dist / "src" / import_name
    assert (src / "py.typed").is_file()
    assert (PACKAGES / dist / "README.md").is_file()
    assert (PACKAGES / dist / "tests").is_dir()


def test_the_meta_package_requires_the_fast_extras():
    # pip install para-joblib is the fast joblib: zstd compression and xxh3
    # Memory keys without any extra; the slim packages keep them optional.
    extras = {
        req.name.lower(): req.extras
        for req in _requirements("para-joblib")
        if req.marker is None
    }
    assert {"numpy", "zstd"} <= extras["para-persist"]
    assert "fast-hash" in extras["para-cache"]
    for dist, fast in (("para-persist", "zstandard"), ("para-cache", "xxhash")):
        (req,) = [r for r in _requirements(dist) if r.name.lower() == fast]
        assert "extra" in str(req.marker), f"{dist} must keep {fast} optional"


def test_no_package_named_para_is_used():
    # The bare name belongs to an unrelated project on the package index.
    for dist in REQUIRED:
        assert all(req.name.lower() != "para" for req in _requirements(dist))
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("para")
