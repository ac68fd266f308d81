"""Shared fixtures: the same Memory suite runs on every store."""

from __future__ import annotations

import os
import uuid

import pytest

STORES = ["local", "fsspec-memory", "fsspec-file"]


class StoreSpec:
    """How to build a Memory on one kind of store, and how to look inside it."""

    def __init__(self, kind: str, tmp_path) -> None:
        self.kind = kind
        if kind == "local":
            self.location = str(tmp_path / "cache")
            self.backend = "local"
        elif kind == "fsspec-file":
            pytest.importorskip("fsspec")
            self.location = "file://" + str(tmp_path / "cache")
            self.backend = "fsspec"
        else:
            pytest.importorskip("fsspec")
            self.location = f"memory://para-test-{uuid.uuid4().hex}/cache"
            self.backend = "fsspec"

    def memory(self, **kwargs):
        from para_cache import Memory

        kwargs.setdefault("verbose", 0)
        return Memory(self.location, backend=self.backend, **kwargs)

    @property
    def fs(self):
        import fsspec

        if self.kind == "local":
            return fsspec.filesystem("file")
        return fsspec.core.url_to_fs(self.location)[0]

    def root(self) -> str:
        """Store root ("<location>/joblib") as a path the fs understands."""
        if self.kind == "local":
            return os.path.join(self.location, "joblib")
        return self.fs._strip_protocol(self.location) + "/joblib"

    def files(self) -> list[str]:
        if self.kind == "local":
            out = []
            for dirpath, _, names in os.walk(self.root()):
                out.extend(os.path.join(dirpath, n) for n in names)
            return out
        try:
            return list(self.fs.find(self.root()))
        except FileNotFoundError:
            return []

    def entries(self) -> list[str]:
        """Entry folders holding an output."""
        return sorted(
            {os.path.dirname(f) for f in self.files() if f.endswith("output.pkl")}
        )

    def cleanup(self) -> None:
        if self.kind == "fsspec-memory":
            bucket = self.location.split("://", 1)[1].split("/", 1)[0]
            if self.fs.exists("/" + bucket):
                self.fs.rm("/" + bucket, recursive=True)


@pytest.fixture(params=STORES)
def store(request, tmp_path):
    spec = StoreSpec(request.param, tmp_path)
    yield spec
    # Nothing half-written may stay behind once the calls returned.
    leftovers = [f for f in spec.files() if f.endswith(".tmp")]
    spec.cleanup()
    assert leftovers == []


@pytest.fixture
def local_store(tmp_path):
    return StoreSpec("local", tmp_path)
