"""The one place that reaches para-persist, so the rest stays storage-agnostic."""

from __future__ import annotations

try:
    from para_persist import CorruptFileError, dump, load
except ImportError:  # TEMPORARY until para-persist exports its API
    import pickle

    class CorruptFileError(pickle.UnpicklingError, ValueError):  # type: ignore[no-redef]
        pass

    def dump(value, filename, compress=0, protocol=None):  # type: ignore[no-redef]
        if hasattr(filename, "write"):
            pickle.dump(value, filename, protocol=protocol or 5)
            return []
        with open(filename, "wb") as f:
            pickle.dump(value, f, protocol=protocol or 5)
        return [filename]

    def load(filename, mmap_mode=None):  # type: ignore[no-redef]
        try:
            if hasattr(filename, "read"):
                return pickle.load(filename)
            with open(filename, "rb") as f:
                return pickle.load(f)
        except (EOFError, pickle.UnpicklingError) as exc:
            raise CorruptFileError(str(exc)) from exc


__all__ = ["CorruptFileError", "dump", "load"]
