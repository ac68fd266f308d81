"""Same names as ``joblib.func_inspect``: how Memory sees a function.

``filter_args`` (the call's arguments by parameter name, defaults applied,
ignored ones dropped: what Memory hashes), ``get_func_code``,
``get_func_name`` and ``format_signature``, from para_cache, whose Memory
uses the very same functions. Names resolve on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._lazy import make_lazy_module
from ._sources import _CACHE

__all__ = [
    "filter_args",
    "format_call",
    "format_signature",
    "get_func_code",
    "get_func_name",
]

_TABLE = dict.fromkeys(__all__, _CACHE)

_getattr, __dir__ = make_lazy_module(__name__, _TABLE)


def __getattr__(name: str) -> Any:
    return _getattr(name)


if TYPE_CHECKING:  # static analysers see the real objects
    from para_cache import (
        filter_args,
        format_call,
        format_signature,
        get_func_code,
        get_func_name,
    )
