"""The two unpicklers of ``load`` and the rules of safe loading.

* ``_FastUnpickler`` (C ``pickle.Unpickler``) reads the pickle bytes of a
  para file, checked against the file's index first; array placeholders read
  their raw block by offset from the index.
* ``_StreamUnpickler`` (pure-Python unpickler, like joblib's) reads every
  other file - joblib files of any version, compressed streams, file objects
  - and swaps each placeholder on the stack for the array read from where the
  stream stands.

Both resolve globals through ``_resolve``, which maps joblib's placeholder
classes to ours (so no joblib is needed). With ``trusted=False`` only the
pure-Python one runs, as ``_SafeUnpickler``: every opcode that names, calls
or changes an object is checked by the rules of ``_safe``.
"""

from __future__ import annotations

import _compat_pickle
import collections
import os
import pickle
import struct
import sys
from collections.abc import Iterable
from typing import Any

from ._errors import CorruptFileError, UnsafeLoadError
from ._limits import Budget, Nesting, charged_reads, depth_limit
from ._npwrp import NDArrayWrapper, NumpyArrayWrapper, ZNDArrayWrapper
from ._safe import SafeRules, check_array_state
from ._segments import SegmentPlaceholder, segment_unwrapper
from ._streamarrays import read_stream

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
        max_bytes: int | None = None,
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
        # How Python 2 ``str`` objects decode (pickle's ``encoding``): ASCII
        # by default, as joblib, so that a Python 2 file fails with its message.
        self.encoding = "ASCII"
        self.arrays_read = 0
        self.sibling_arrays = False  # read arrays of a joblib < 0.10 dump
        # Checksums of a para file (see _checksum): algorithm (None: do not
        # check), digests of each big block by offset, digests a stream has.
        self.algo: int | None = None
        self.block_sums: dict[int, list[int]] = {}
        self.stream_digests = 0
        self.para_stream = False  # a para file read as a stream (file object)
        # Big blocks a para stream read (flat uint8 views; None: not checked).
        self.stream_blocks: list[Any] = []
        self.index: Any = None  # the checked footer of a para file
        self._classes: dict[str, type] = {}
        self.rules = SafeRules(allowed) if safe else None
        # Bytes the load may still allocate (None: no limit), and the
        # nesting bound of safe loads.
        self.budget = Budget(max_bytes) if max_bytes is not None else None
        self.nesting = Nesting(depth_limit()) if safe else None
        self.nested_pickles = 0  # object arrays' pickles inside the stream
        # The unpickler reads a buffer already counted against the budget.
        self.in_memory = False

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
            if self.rules is not None:
                self.rules.placeholder_types = tuple(self._classes.values())
        return cls


def _unwrap(a: Any, *args: Any) -> Any:
    """``numpy.asanyarray`` that refuses a placeholder left on the stack."""
    if isinstance(a, NumpyArrayWrapper):
        raise CorruptFileError("array placeholder without its data")
    import numpy

    return numpy.asanyarray(a, *args)


def _safe_unwrap(unwrap: Any, rules: SafeRules) -> Any:
    """The ``numpy.asanyarray`` stand-in of a safe load: it only passes on
    the array that a placeholder was replaced by (joblib's own use)."""

    def asanyarray(a: Any, *args: Any) -> Any:
        np = sys.modules.get("numpy")
        if (
            np is None
            or not isinstance(a, (np.ndarray, SegmentPlaceholder))
            or args not in ((), (None,))
        ):
            raise UnsafeLoadError(
                "refused numpy.asanyarray with arguments from the file "
                "(trusted=False only rebuilds data)"
            )
        rules.placeholders.discard(id(a))
        return unwrap(a, *args)

    return asanyarray


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


def _resolve(ctx: _Ctx, module: str, name: str, default: Any) -> Any:
    renamed = _compat_pickle.NAME_MAPPING.get((module, name))
    if renamed is not None:  # e.g. Python 2's __builtin__.xrange
        module, name = renamed
    module = _PY2_MODULES.get(module, module)
    if module.startswith("numpy"):
        module = _numpy_module(module)
    if module in _PLACEHOLDER_MODULES and name in _PLACEHOLDERS:
        return ctx.placeholder(name)
    if (module, name) == ("numpy", "asanyarray"):
        if ctx.rules is not None:
            rules = ctx.rules
            return rules.checked(
                "asanyarray", lambda: _safe_unwrap(ctx.unwrapper(), rules)
            )
        return ctx.unwrapper()
    if ctx.rules is not None:
        return ctx.rules.resolve(module, name, default)
    # Arrays pickled by numpy itself (items of an object array, ndarray
    # subclasses, protocol < 5) keep their byte order: joblib only turns
    # those it reads from its own array blocks.
    return default(module, name)


class _LoadRules:
    """What both unpicklers share: the load's globals policy, no persistent ids."""

    def __init__(self, file: Any, ctx: _Ctx) -> None:
        super().__init__(file, encoding="latin1")  # type: ignore[call-arg]
        self._ctx = ctx
        if ctx.budget is not None and not ctx.in_memory and hasattr(self, "_file_read"):
            # The pure-Python unpickler reads through these: each read is
            # counted before it is made (the C one reads checked buffers).
            self._file_read, self._file_readline = charged_reads(file, ctx.budget)

    def find_class(self, module: str, name: str) -> Any:
        return _resolve(self._ctx, module, name, super().find_class)  # type: ignore[misc]

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r} is not supported")


class _FastUnpickler(_LoadRules, pickle.Unpickler):
    """C unpickler for the verified pickle bytes of a para file (trusted)."""


_PyBase = pickle._Unpickler  # type: ignore[attr-defined]


class _StreamUnpickler(_LoadRules, _PyBase):
    """Pure-Python unpickler reading raw array data in-line, like joblib.

    Also reads the checked pickle bytes of a para file for safe loads (the
    placeholders are then ``SegmentPlaceholder``: their REDUCE reads the
    array's raw block).
    """

    dispatch = _PyBase.dispatch.copy()

    def load_build(self) -> None:
        stack = self.stack
        np = sys.modules.get("numpy")
        if len(stack) >= 2 and np is not None and isinstance(stack[-2], np.ndarray):
            # numpy trusts the item count of an object array's state (and
            # crashes on a short one): damaged files must not get there.
            check_array_state(np, stack[-2], stack[-1])
        _PyBase.load_build(self)
        self._placeholder_read()

    def load_bytearray8(self) -> None:
        # pickle allocates the announced size before reading it: count it first.
        (n,) = struct.unpack("<Q", self.read(8))
        budget = self._ctx.budget
        if budget is not None:
            budget.take(n, "a bytearray of the pickle stream")
        if n > sys.maxsize:
            raise CorruptFileError(f"bytearray of {n} bytes exceeds the maximum")
        b = bytearray(n)
        self.readinto(b)
        self.append(b)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def _placeholder_read(self) -> None:
        top = self.stack[-1]
        if isinstance(top, (NumpyArrayWrapper, NDArrayWrapper)):
            ctx = self._ctx
            self.stack[-1] = read_stream(top, ctx, lambda f: type(self)(f, ctx))
            if isinstance(top, NumpyArrayWrapper):
                ctx.arrays_read += 1

    dispatch[pickle.BUILD[0]] = load_build


_DICTS = (dict, collections.OrderedDict)
_LISTS = (list, collections.deque)


def _target(self: Any) -> Any:
    """The object a MARK-ed opcode (SETITEMS, APPENDS, ADDITEMS) acts on."""
    try:
        return self.metastack[-1][-1]
    except IndexError:
        raise CorruptFileError("opcode without its target object") from None


class _SafeUnpickler(_StreamUnpickler):
    """``_StreamUnpickler`` for ``trusted=False``: each opcode that calls,
    builds or fills an object is checked first (rules in ``_safe``)."""

    dispatch = _StreamUnpickler.dispatch.copy()

    def __init__(self, file: Any, ctx: _Ctx) -> None:
        super().__init__(file, ctx)
        self._rules = ctx.rules
        self._nesting = ctx.nesting

    def _checked(op: Any, check: Any) -> Any:  # type: ignore[misc]
        def run(self: Any) -> None:
            check(self, self._rules, self.stack)
            op(self)

        return run

    def _instantiate(self, klass: Any, args: Any) -> None:
        self._rules.check_call(klass, tuple(args))
        _PyBase._instantiate(self, klass, args)

    def load_build(self) -> None:
        stack = self.stack
        if len(stack) < 2:
            raise CorruptFileError("BUILD without its object")
        state = stack[-1]
        if self._rules.build(stack[-2], state):
            stack.pop()
            return
        _PyBase.load_build(self)
        self._placeholder_read()

    D = _PyBase
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.REDUCE[0]] = _checked(
        D.load_reduce, lambda u, r, s: r.check_call(s[-2], s[-1])
    )
    dispatch[pickle.NEWOBJ[0]] = _checked(
        D.load_newobj, lambda u, r, s: r.check_new(s[-2], s[-1])
    )
    dispatch[pickle.NEWOBJ_EX[0]] = _checked(
        D.load_newobj_ex, lambda u, r, s: r.check_new(s[-3], s[-2], s[-1])
    )
    dispatch[pickle.SETITEM[0]] = _checked(
        D.load_setitem, lambda u, r, s: r.check_target(s[-3], _DICTS, "SETITEM")
    )
    dispatch[pickle.SETITEMS[0]] = _checked(
        D.load_setitems,
        lambda u, r, s: r.check_target(_target(u), _DICTS, "SETITEMS"),
    )
    dispatch[pickle.APPEND[0]] = _checked(
        D.load_append, lambda u, r, s: r.check_target(s[-2], _LISTS, "APPEND")
    )
    dispatch[pickle.APPENDS[0]] = _checked(
        D.load_appends,
        lambda u, r, s: r.check_target(_target(u), _LISTS, "APPENDS"),
    )
    dispatch[pickle.ADDITEMS[0]] = _checked(
        D.load_additems,
        lambda u, r, s: r.check_target(_target(u), (set,), "ADDITEMS"),
    )

    # Nesting: after each opcode that puts objects into a container, the
    # container's height is updated from its new items (see _limits).
    def _nests(op: Any, items: Any, holder: Any = None) -> Any:  # type: ignore[misc]
        def run(self: Any) -> None:
            stack = self.stack
            got = items(self, stack)
            parent = holder(self, stack) if holder is not None else None
            op(self)
            self._nesting.link(self.stack[-1] if parent is None else parent, got)

        return run

    def load_mark(self) -> None:
        _PyBase.load_mark(self)
        self._nesting.check_marks(len(self.metastack))

    _marked = lambda u, s: s  # noqa: E731 - the items since the MARK
    for _op, _items, _holder in (
        (pickle.TUPLE, _marked, None),
        (pickle.TUPLE1, lambda u, s: s[-1:], None),
        (pickle.TUPLE2, lambda u, s: s[-2:], None),
        (pickle.TUPLE3, lambda u, s: s[-3:], None),
        (pickle.LIST, _marked, None),
        (pickle.DICT, _marked, None),
        (pickle.FROZENSET, _marked, None),
        (pickle.INST, _marked, None),
        (pickle.OBJ, _marked, None),
        (pickle.REDUCE, lambda u, s: s[-1:], None),
        (pickle.NEWOBJ, lambda u, s: s[-1:], None),
        (pickle.NEWOBJ_EX, lambda u, s: s[-2:], None),
        (pickle.BUILD, lambda u, s: s[-1:], None),
        (pickle.APPEND, lambda u, s: s[-1:], lambda u, s: s[-2]),
        (pickle.SETITEM, lambda u, s: s[-2:], lambda u, s: s[-3]),
        (pickle.APPENDS, _marked, lambda u, s: _target(u)),
        (pickle.SETITEMS, _marked, lambda u, s: _target(u)),
        (pickle.ADDITEMS, _marked, lambda u, s: _target(u)),
    ):
        dispatch[_op[0]] = _nests(dispatch[_op[0]], _items, _holder)
    dispatch[pickle.MARK[0]] = load_mark
    del D, _checked, _nests, _marked, _op, _items, _holder


def stream_unpickler(f: Any, ctx: _Ctx) -> Any:
    """The pure-Python unpickler this load needs (safe or not)."""
    u = (_SafeUnpickler if ctx.safe else _StreamUnpickler)(f, ctx)
    u.encoding = ctx.encoding
    return u
