"""Which entries ``reduce_size`` deletes: least recently used first.

Pure selection over ``CacheItemInfo`` records (path, size, last access); the
stores list their entries and delete what this returns.
"""

from __future__ import annotations

import datetime
import operator
from typing import Any

__all__ = ["check_age_limit", "items_to_delete", "memstr_to_bytes"]

_UNITS = {"K": 1, "M": 2, "G": 3}


def memstr_to_bytes(text: str) -> int:
    """Convert ``"10K"``, ``"3M"`` or ``"1G"`` into a number of bytes."""
    unit = text[-1:].upper()
    try:
        return int(float(text[:-1]) * 1024 ** _UNITS[unit])
    except (KeyError, ValueError):
        raise ValueError(
            f"Invalid literal for size: {text!r} should be a string like "
            "'10G', '500M', '50K'."
        ) from None


def check_age_limit(age_limit: datetime.timedelta | None) -> None:
    """Refuse a negative ``age_limit`` (before any entry is listed)."""
    if age_limit is not None and age_limit.total_seconds() < 0:
        raise ValueError(f"age_limit has to be a positive timedelta, got {age_limit!r}")


def items_to_delete(
    items: list,
    bytes_limit: Any,
    items_limit: int | None = None,
    age_limit: datetime.timedelta | None = None,
) -> list:
    """The entries to delete, oldest access first, so that every limit holds.

    ``bytes_limit`` is a number of bytes, a string such as ``"1G"`` or None;
    ``age_limit`` a non-negative timedelta or None.
    """
    if isinstance(bytes_limit, str):
        bytes_limit = memstr_to_bytes(bytes_limit)
    check_age_limit(age_limit)
    if not items:
        return []
    excess_bytes = 0
    if bytes_limit is not None:
        excess_bytes = sum(i.size for i in items) - bytes_limit
    excess_items = 0 if items_limit is None else len(items) - items_limit
    deadline = None
    if age_limit is not None:
        deadline = datetime.datetime.now() - age_limit
    items = sorted(items, key=operator.attrgetter("last_access"))
    doomed = []
    freed_bytes = 0
    for item in items:
        if (
            freed_bytes >= excess_bytes
            and len(doomed) >= excess_items
            and (deadline is None or item.last_access > deadline)
        ):
            break
        doomed.append(item)
        freed_bytes += item.size
    return doomed
