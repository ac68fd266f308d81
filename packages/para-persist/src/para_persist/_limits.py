"""Resource limits of ``load``: bytes (``max_bytes``) and nesting depth.

* :class:`Budget` counts the bytes a load allocates for its result *before*
  it allocates them: the (decompressed) pickle stream as the unpickler reads
  it, each array's data from the size its metadata declares, and the buffers
  that hold a whole decompressed stream. A compression bomb is refused when
  it announces (or has produced) more than the limit, never after.
* :class:`Nesting` (``trusted=False`` only) bounds how deep the file nests its
  containers. Deep chains of deques or object arrays crash the interpreter
  when freed, and deep tuples when hashed (C recursion, no RecursionError):
  the file is refused before it builds one.

Heights are computed bottom-up as the file fills its containers (a
container's height is one more than its highest item); when a container that
already sits inside others gets higher, its parents are raised in turn (each
at most once per change, so reference cycles end).
"""

from __future__ import annotations

import collections
import os
import sys
from typing import Any

from ._errors import LoadLimitError

__all__ = ["Budget", "Nesting", "charged_reads", "default_max_bytes", "depth_limit"]


def default_max_bytes() -> int | None:
    """The machine's physical memory in bytes (None where it is not known)."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    if pages <= 0 or size <= 0:
        return None
    return pages * size


def depth_limit() -> int:
    """Deepest nesting a safe load admits: what the pickler itself can write
    at this interpreter's recursion limit (one level per container), twice."""
    return 2 * sys.getrecursionlimit()


class Budget:
    """Bytes a load may still allocate (``max_bytes``)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def check(self, n: int, what: str) -> None:
        """Refuse ``n`` more bytes if they would exceed the limit."""
        if self.used + n > self.limit:
            raise LoadLimitError(
                f"loading this file needs more than max_bytes={self.limit} bytes: "
                f"{what} asks for {n} bytes, with {self.used} bytes already "
                "taken. If you trust this file's size, pass a larger max_bytes "
                "(or max_bytes=None for no limit)."
            )

    def take(self, n: int, what: str) -> None:
        """Count ``n`` bytes about to be allocated, or refuse them."""
        self.check(n, what)
        self.used += n

    def give_back(self, n: int) -> None:
        self.used -= n


_STREAM = "the pickle stream"


def charged_reads(file: Any, budget: Budget) -> tuple[Any, Any]:
    """``read`` and ``readline`` of ``file`` that count the bytes they return
    against ``budget`` before reading them."""
    read = file.read
    readline = file.readline

    def charged_read(n: int = -1) -> bytes:
        if n is None or n < 0:  # the pickle module never asks for "all"
            data = read()
            budget.take(len(data), _STREAM)
            return data
        budget.take(n, _STREAM)
        data = read(n)
        if len(data) < n:
            budget.give_back(n - len(data))
        return data

    def charged_readline() -> bytes:
        # A protocol 0 line has no announced length: read at most what is
        # left (plus one byte to know it is too long).
        room = budget.limit - budget.used
        try:
            line = readline(room + 1)
        except TypeError:  # a user's file object whose readline takes no size
            line = readline()
        budget.take(len(line), "a text line of the pickle stream")
        return line

    return charged_read, charged_readline


# Objects that hold no reference to another object of the file.
_LEAVES = frozenset(
    [int, float, complex, bool, type(None), str, bytes, bytearray, type, slice]
)
# Containers whose items cannot change once made (built bottom-up).
_FIXED = frozenset([tuple, frozenset])


class _Parents(list):
    """More than one container holding the same object."""


class Nesting:
    """Heights of the containers a safe load builds, refused past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._height: dict[int, int] = {}
        # id(container) -> the container(s) holding it: how a height change
        # reaches them. Only for containers that can still change.
        self._up: dict[int, Any] = {}
        # Every object keyed by id above stays alive until the load ends, so
        # no id is reused by a new object meanwhile.
        self._keep: list[Any] = []

    def _refuse(self, height: int) -> LoadLimitError:
        return LoadLimitError(
            f"nesting of {height} levels exceeds the limit of {self.limit} that "
            "trusted=False applies (twice sys.getrecursionlimit()): structures "
            "this deep can crash the interpreter when freed or hashed. If you "
            "trust this file, load it with trusted=True, or raise "
            "sys.setrecursionlimit()."
        )

    def check_marks(self, depth: int) -> None:
        """Refuse MARKs nested deeper than the limit (each opens a container)."""
        if depth > self.limit:
            raise self._refuse(depth)

    def link(self, parent: Any, children: Any) -> None:
        """``parent`` now holds ``children``: update its height."""
        height = self._height
        best = 0
        for child in children:
            kind = type(child)
            if kind in _LEAVES:
                continue
            h = height.get(id(child), 1)
            if h > best:
                best = h
            if kind not in _FIXED:
                self._add_parent(child, parent)
        if best == 0:
            return
        new = best + 1
        key = id(parent)
        old = height.get(key)
        if old is None:
            self._keep.append(parent)
        elif new <= old:
            return
        if new > self.limit:
            raise self._refuse(new)
        height[key] = new
        if key in self._up:
            self._raise_parents(parent)

    def _add_parent(self, child: Any, parent: Any) -> None:
        up = self._up
        key = id(child)
        held = up.get(key)
        if held is None:
            up[key] = parent
            self._keep.append(child)
        elif held is not parent:
            if type(held) is _Parents:
                if held[-1] is not parent:
                    held.append(parent)
            else:
                up[key] = _Parents([held, parent])

    def _raise_parents(self, start: Any) -> None:
        """Propagate the new height of ``start`` to the containers above it."""
        height, up = self._height, self._up
        seen = {id(start)}
        todo = collections.deque([start])
        while todo:
            obj = todo.popleft()
            held = up.get(id(obj))
            if held is None:
                continue
            new = height[id(obj)] + 1
            for parent in held if type(held) is _Parents else (held,):
                key = id(parent)
                if key in seen:
                    continue  # once per change: reference cycles end here
                seen.add(key)
                old = height.get(key)
                if old is not None and old >= new:
                    continue
                if new > self.limit:
                    raise self._refuse(new)
                if old is None:
                    self._keep.append(parent)
                height[key] = new
                todo.append(parent)
