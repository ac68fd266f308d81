"""The ``max_nbytes`` and ``mmap_mode`` options, checked as joblib reads them."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["MODES", "check_max_nbytes", "check_mmap_mode"]

MODES = ("r", "r+", "w+", "c")


def check_mmap_mode(mmap_mode: Any) -> str:
    if mmap_mode not in MODES:
        raise ValueError(f"mmap_mode should be one of {MODES}, got {mmap_mode!r}")
    return mmap_mode


_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30}


def check_max_nbytes(max_nbytes: Any) -> int | None:
    """Bytes as an int (None stays None); "1M"-style strings as joblib reads them."""
    if max_nbytes is None:
        return None
    if isinstance(max_nbytes, str):
        text = max_nbytes.strip().upper()
        try:
            return int(float(text[:-1]) * _UNITS[text[-1]])
        except (KeyError, ValueError, IndexError):
            raise ValueError(
                f"max_nbytes should be a number of bytes, a string such as "
                f"'1M', '100K' or '2G', or None; got {max_nbytes!r}"
            ) from None
    # numbers.Real covers numpy's scalars without importing numpy.
    if isinstance(max_nbytes, bool) or not isinstance(max_nbytes, numbers.Real):
        raise ValueError(
            f"max_nbytes should be a number of bytes, a string such as '1M', "
            f"or None; got {max_nbytes!r}"
        )
    if max_nbytes < 0:
        raise ValueError(f"max_nbytes should be >= 0 or None, got {max_nbytes!r}")
    return int(max_nbytes)
