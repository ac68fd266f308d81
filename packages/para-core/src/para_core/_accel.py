"""The optional C accelerator, ``_speedups`` (see ``_speedups.c``).

``speedups`` is the compiled module, or None when it was not built (no
compiler at install time, a vendored copy of the sources) or when the
environment variable ``PARA_CORE_PURE_PYTHON`` is set to anything but
``0``. Every part of it has a Python twin with the same behaviour; only the
speed differs.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["speedups"]


def _load() -> ModuleType | None:
    if os.environ.get("PARA_CORE_PURE_PYTHON", "0") not in ("", "0"):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


speedups = _load()
