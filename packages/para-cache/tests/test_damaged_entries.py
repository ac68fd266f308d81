"""A cache entry damaged on disk is reported with CacheWarning and recomputed.

para-persist's checksums cover every byte of ``output.pkl`` (array data
included), so a hit on a damaged entry never returns a changed value.
"""

from __future__ import annotations

import os
import warnings

import pytest

from para_cache import CacheWarning, Memory

np = pytest.importorskip("numpy")


def _output(root: str) -> str:
    [found] = [
        os.path.join(dirpath, "output.pkl")
        for dirpath, _, names in os.walk(root)
        if "output.pkl" in names
    ]
    return found


def _overwrite_middle(path: str, n: int = 64) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        old = f.read(n)
        f.seek(size // 2)
        f.write(bytes(b ^ 0x5A for b in old))


@pytest.mark.parametrize(
    "n_items",
    [
        50,  # small arrays only, file read whole
        100_000,  # one 800 KB array, file read whole
        400_000,  # a 3.2 MB array, read through the index
    ],
)
@pytest.mark.parametrize("backend", ["local", "fsspec"])
def test_damaged_output_is_recomputed_with_a_warning(tmp_path, n_items, backend):
    if backend == "fsspec":
        pytest.importorskip("fsspec")
        location = "file://" + str(tmp_path / "cache")
    else:
        location = str(tmp_path / "cache")
    calls = []

    def produce(n):
        calls.append(n)
        return {"data": np.linspace(0.0, 1.0, n), "n": n, "tags": ["a"] * 10}

    mem = Memory(location, backend=backend, verbose=0)
    cached = mem.cache(produce)
    first = cached(n_items)
    output = _output(str(tmp_path / "cache"))
    _overwrite_middle(output)
    with pytest.warns(CacheWarning, match="Corrupted cache entry"):
        again = cached(n_items)
    assert len(calls) == 2
    np.testing.assert_array_equal(again["data"], first["data"])
    # The entry was stored anew: the next hit is clean.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = cached(n_items)
    assert len(calls) == 2
    np.testing.assert_array_equal(third["data"], first["data"])
