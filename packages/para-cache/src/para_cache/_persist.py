"""The one place that reaches para-persist, so the rest stays storage-agnostic."""

from __future__ import annotations

from para_persist import CorruptFileError, dump, load

__all__ = ["CorruptFileError", "dump", "load"]
