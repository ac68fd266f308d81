"""Same names as ``joblib.externals``: loky and cloudpickle themselves.

joblib vendors copies of both; para depends on the released distributions,
so ``joblib.externals.loky`` is ``loky`` (its reusable executor, its
``cpu_count`` and its process contexts are the ones para runs on) and
``joblib.externals.cloudpickle`` is ``cloudpickle``. Loaded on first access.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["cloudpickle", "loky"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
