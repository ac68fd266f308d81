"""The two unpicklers of ``load`` and the rules of safe loading.

* ``_FastUnpickler`` (C ``pickle.Unpickler``) reads the pickle bytes of a
  para file, checked against the file's index first; array placeholders read
  their raw block by offset from the index.
* ``_StreamUnpickler`` (pure-Python unpickler, like joblib's) reads every
  other file - joblib files of any version, compressed streams, file objects
  - and swaps each placeholder on the stack for the array read from where the
  stream stands.

Both resolve globals through ``_resolve``, which maps joblib's placeholder
classes to ours (so no joblib is needed) and, with ``trusted=False``, refuses
every global outside a small allow-list before importing it.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Iterable
from typing import Any

from ._errors import CorruptFileError, UnsafeLoadError
from ._npwrp import (
    NDArrayWrapper,
    NumpyArrayWrapper,
    SegmentPlaceholder,
    ZNDArrayWrapper,
    _read_stream,
    segment_unwrapper,
)

_PLACEHOLDER_MODULES = (
    "joblib.numpy_pickle",
    "joblib.numpy_pickle_compat",
    "sklearn.externals.joblib.numpy_pickle",
    "sklearn.externals.joblib.numpy_pickle_compat",
    "para_persist._npwrp",
)
_PLACEHOLDERS = {
    "NumpyArrayWrapper": NumpyArrayWrapper,
    "NDArrayWrapper": NDArrayWrapper,
    "ZNDArrayWrapper": ZNDArrayWrapper,
}

# Python 2 names still found in old pickles.
_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}

# Globals admitted by ``trusted=False``: data types whose construction and
# ``__setstate__`` run no code chosen by the file. Python classes without a
# ``__setstate__`` are left out on purpose: BUILD on the class object itself
# would set attributes on it.
_SAFE = frozenset(
    [("builtins", n) for n in (
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset",
        "int", "list", "object", "range", "set", "slice", "str", "tuple",
    )]
    + [
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
        ("datetime", "date"),
        ("datetime", "datetime"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("decimal", "Decimal"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy", "matrix"),
        ("numpy", "memmap"),
        ("numpy.matrixlib.defmatrix", "matrix"),
        ("numpy._core.memmap", "memmap"),
        ("numpy.core.memmap", "memmap"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
    ]
)  # fmt: skip


def normalize_allowed(allowed_globals: Iterable[Any]) -> frozenset[tuple[str, str]]:
    """Turn ``allowed_globals`` entries into ``(module, name)`` pairs."""
    if isinstance(allowed_globals, (str, bytes)):
        raise TypeError(
            "allowed_globals must be a collection of names, e.g. "
            f"['module.Class'], not the single string {allowed_globals!r}"
        )
    out = set()
    for item in allowed_globals:
        if isinstance(item, str):
            module, _, name = item.rpartition(".")
            if not module or not name:
                raise ValueError(
                    f"allowed_globals entry {item!r} is not of the form 'module.name'"
                )
            out.add((module, name))
        elif isinstance(item, tuple) and len(item) == 2:
            out.add((str(item[0]), str(item[1])))
        elif hasattr(item, "__module__") and hasattr(item, "__qualname__"):
            out.add((item.__module__, item.__qualname__))
        else:
            raise TypeError(
                f"allowed_globals entry {item!r} must be 'module.name', a "
                "(module, name) tuple, or the class/function itself"
            )
    return frozenset(out)


class _Ctx:
    """Everything the placeholders of one ``load`` call need."""

    def __init__(
        self,
        *,
        filename: str | None,
        name: Any,
        mmap_mode: str | None,
        native: bool,
        safe: bool,
        allowed: frozenset[tuple[str, str]],
    ) -> None:
        self.filename = filename
        self._name = name  # path or file object name: sibling files live beside
        self.mmap_mode = mmap_mode
        self.native = native
        self.safe = safe
        self.allowed = allowed
        self.segments: list[tuple[int, int]] | None = None
        # Buffer holding the small array blocks, and where each starts in it
        # (None: the buffer is the whole file, offsets are positions in it).
        self.small: tuple[Any, dict[int, int] | None] = (bytearray(), {})
        self._unwrap: Any = None
        self.seg_i = 0
        self.file: Any = None  # random-access file of the fast path
        self.mapfile: Any = None  # open file that read-only maps use
        self.stream: Any = None  # sequential stream of the stream path
        self.file_size: int | None = None
        self.arrays_read = 0
        self._classes: dict[str, type] = {}

    @property
    def dirname(self) -> str:
        """Folder of the file (joblib < 0.10 dumps keep arrays beside it)."""
        # Computed on demand: only old formats need it, not every load.
        return os.path.dirname(self._name) if isinstance(self._name, str) else ""

    def unwrapper(self) -> Any:
        """The ``numpy.asanyarray`` stand-in for this load."""
        if self.segments is None:
            return _unwrap
        if self._unwrap is None:
            self._unwrap = segment_unwrapper(self)
        return self._unwrap

    def placeholder(self, name: str) -> type:
        # One subclass per load: any attribute a hostile file sets on the
        # class object dies with the load.
        cls = self._classes.get(name)
        if cls is None:
            base = _PLACEHOLDERS[name]
            if self.segments is not None and base is NumpyArrayWrapper:
                base = SegmentPlaceholder  # read by the REDUCE that follows
            cls = type(name, (base,), {"__module__": base.__module__})
            self._classes[name] = cls
        return cls


def _unwrap(a: Any, *args: Any) -> Any:
    """``numpy.asanyarray`` that refuses a placeholder left on the stack."""
    if isinstance(a, NumpyArrayWrapper):
        raise CorruptFileError("array placeholder without its data")
    import numpy

    return numpy.asanyarray(a, *args)


def _numpy_module(module: str) -> str:
    """Spell numpy's private module names the way the installed numpy does."""
    np = sys.modules.get("numpy")
    if np is None:
        try:
            import numpy as np
        except ImportError:
            return module
    if int(np.__version__.split(".")[0]) >= 2:
        if module == "numpy.core" or module.startswith("numpy.core."):
            return "numpy._core" + module[len("numpy.core") :]
    elif module.startswith("numpy._core"):
        return "numpy.core" + module[len("numpy._core") :]
    return module


def _frombuffer(ctx: _Ctx, real: Any) -> Any:
    def frombuffer(*args: Any) -> Any:
        arr = real(*args)
        if ctx.native and not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return arr

    return frombuffer


def _resolve(ctx: _Ctx, module: str, name: str, default: Any) -> Any:
    module = _PY2_MODULES.get(module, module)
    if module.startswith("numpy"):
        module = _numpy_module(module)
    if module in _PLACEHOLDER_MODULES and name in _PLACEHOLDERS:
        return ctx.placeholder(name)
    if (module, name) == ("numpy", "asanyarray"):
        return ctx.unwrapper()
    if ctx.safe and (module, name) not in _SAFE and (module, name) not in ctx.allowed:
        raise UnsafeLoadError(
            f"refused to load global '{module}.{name}': trusted=False admits "
            "only numpy arrays/dtypes, builtin containers and scalars. If you "
            f"trust this object, pass allowed_globals=['{module}.{name}']."
        )
    obj = default(module, name)
    if name == "_frombuffer" and module.startswith("numpy"):
        return _frombuffer(ctx, obj)
    return obj


def _check_array_state(np: Any, state: tuple) -> None:
    """Refuse ndarray states that make numpy read out of bounds.

    ``ndarray.__setstate__`` trusts the length of an object array's item
    list (numpy 2.4 crashes on a short one), so it is checked here first.
    """
    if len(state) not in (4, 5):
        raise CorruptFileError("bad ndarray state")
    shape, dtype, data = state[-4], state[-3], state[-1]
    if not isinstance(dtype, np.dtype) or not isinstance(shape, tuple):
        raise CorruptFileError("bad ndarray state")
    count = 1
    for n in shape:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise CorruptFileError(f"bad ndarray shape {shape!r}")
        count *= int(n)
    if dtype.hasobject and (not isinstance(data, list) or len(data) != count):
        raise CorruptFileError(
            f"object array of {count} items stored with "
            f"{len(data) if isinstance(data, list) else type(data).__name__} items"
        )


class _LoadRules:
    """What both unpicklers share: the load's globals policy, no persistent ids."""

    def __init__(self, file: Any, ctx: _Ctx) -> None:
        super().__init__(file, encoding="latin1")  # type: ignore[call-arg]
        self._ctx = ctx

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(self._ctx, module, name, super().find_class)  # type: ignore[misc]

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r} is not supported")


class _FastUnpickler(_LoadRules, pickle.Unpickler):
    """C unpickler for the verified pickle bytes of a para file."""


class _StreamUnpickler(_LoadRules, pickle._Unpickler):  # type: ignore[name-defined]
    """Pure-Python unpickler reading raw array data in-line, like joblib."""

    dispatch = pickle._Unpickler.dispatch.copy()  # type: ignore[attr-defined]

    def load_build(self) -> None:
        stack = self.stack
        if len(stack) >= 2 and type(stack[-1]) is tuple:
            np = sys.modules.get("numpy")
            if np is not None and isinstance(stack[-2], np.ndarray):
                _check_array_state(np, stack[-1])
        pickle._Unpickler.load_build(self)  # type: ignore[attr-defined]
        top = self.stack[-1]
        if isinstance(top, (NumpyArrayWrapper, NDArrayWrapper)):
            ctx = self._ctx
            self.stack[-1] = _read_stream(top, ctx, lambda f: _StreamUnpickler(f, ctx))
            if isinstance(top, NumpyArrayWrapper):
                ctx.arrays_read += 1

    dispatch[pickle.BUILD[0]] = load_build
