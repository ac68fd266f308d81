"""``load(..., trusted=False)``: data only, by construction rather than by name.

A pickle is a program; safe loading runs it in the pure-Python unpickler
with every opcode that acts on objects checked (see ``_unpickler``):

* **Naming** a global (GLOBAL, STACK_GLOBAL, INST, EXT*): only the names of
  ``_NAMES`` and the caller's ``allowed_globals``, refused before import.
  numpy's classes (``ndarray``, ``memmap``, ``matrix``, ...) may be *named*
  (as the class of an array) but are never called.
* **Calling** (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ): only the callables of
  :meth:`SafeRules.check_call`, each with its arguments checked. numpy's
  reconstruction functions are replaced by stand-ins that check shape,
  dtype and buffer size before calling the real one: arrays come from
  ``_reconstruct`` + BUILD (object arrays only from a list of items, never
  from raw bytes) or ``_frombuffer`` (no object dtype); dtypes are always
  fresh copies, rebuilt through numpy's public constructor, which refuses
  overlapping or out-of-bounds fields.
* **BUILD** only on an array or dtype this load created and not yet used
  (once, with a checked state), on array placeholders, and on instances of
  ``allowed_globals`` classes; never on a class, a module or a shared dtype.
* **SETITEM(S) / APPEND(S) / ADDITEMS** only on dict/OrderedDict,
  list/deque and set (and instances of ``allowed_globals`` classes).

What the caller admits through ``allowed_globals`` is trusted: it is called
with arguments from the file.
"""

from __future__ import annotations

import _codecs
import collections
import copyreg
import datetime
import decimal
import pickle
import sys
from typing import Any

from ._errors import CorruptFileError, UnsafeLoadError

__all__ = ["SafeRules", "check_array_state"]

_LATIN1 = frozenset(["latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1"])
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_SEQUENCES = (tuple, list, set, frozenset, dict, str, bytes, bytearray)

# (module, name) -> role. "ref": may be named (e.g. as an array's class),
# never called; "call": checked by check_call; "np:<x>": replaced by the
# checking stand-in SafeRules.<x>.
_NAMES: dict[tuple[str, str], str] = {
    **{
        ("builtins", n): "call"
        for n in (
            "bool", "bytearray", "bytes", "complex", "dict", "float",
            "frozenset", "int", "list", "object", "range", "set", "slice",
            "str", "tuple",
        )
    },
    ("copyreg", "_reconstructor"): "call",
    ("_codecs", "encode"): "call",
    ("collections", "OrderedDict"): "call",
    ("collections", "deque"): "call",
    ("datetime", "date"): "call",
    ("datetime", "datetime"): "call",
    ("datetime", "time"): "call",
    ("datetime", "timedelta"): "call",
    ("datetime", "timezone"): "call",
    ("decimal", "Decimal"): "call",
    ("numpy", "dtype"): "np:dtype",
    ("numpy._core.multiarray", "_reconstruct"): "np:reconstruct",
    ("numpy._core.multiarray", "scalar"): "np:scalar",
    ("numpy._core.numeric", "_frombuffer"): "np:frombuffer",
    ("numpy.core.multiarray", "_reconstruct"): "np:reconstruct",
    ("numpy.core.multiarray", "scalar"): "np:scalar",
    ("numpy.core.numeric", "_frombuffer"): "np:frombuffer",
    ("numpy.ma.core", "_mareconstruct"): "np:mareconstruct",
    ("numpy.ma.core", "MaskedConstant"): "np:masked",
    ("numpy", "ndarray"): "ref",
    ("numpy", "matrix"): "ref",
    ("numpy.matrixlib.defmatrix", "matrix"): "ref",
    ("numpy", "memmap"): "ref",
    ("numpy._core.memmap", "memmap"): "ref",
    ("numpy.core.memmap", "memmap"): "ref",
    ("numpy", "recarray"): "ref",
    ("numpy.rec", "recarray"): "ref",
    ("numpy._core.records", "recarray"): "ref",
    ("numpy.core.records", "recarray"): "ref",
    ("numpy", "record"): "ref",
    ("numpy._core.records", "record"): "ref",
    ("numpy.core.records", "record"): "ref",
    ("numpy.ma", "MaskedArray"): "ref",
    ("numpy.ma.core", "MaskedArray"): "ref",
}  # fmt: skip


def _refuse_global(module: str, name: str) -> UnsafeLoadError:
    return UnsafeLoadError(
        f"refused to load global '{module}.{name}': trusted=False admits "
        "only numpy arrays/dtypes, builtin containers and scalars. If you "
        f"trust this object, pass allowed_globals=['{module}.{name}']."
    )


def _refuse(what: str) -> UnsafeLoadError:
    return UnsafeLoadError(
        f"refused {what}: trusted=False only rebuilds data (numpy arrays and "
        "dtypes, builtin containers and scalars, and allowed_globals)"
    )


def _np() -> Any:
    import numpy

    return numpy


def _shape_count(np: Any, shape: Any) -> int:
    if type(shape) is not tuple or len(shape) > 64:
        raise CorruptFileError(f"bad ndarray shape {shape!r}")
    count = 1
    for n in shape:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise CorruptFileError(f"bad ndarray shape {shape!r}")
        count *= int(n)
    return count


def _raw_len(data: Any) -> int | None:
    """Byte length of a raw array buffer as ndarray.__setstate__ takes it."""
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    if isinstance(data, str):  # Python 2 pickles read with latin1
        return len(data)
    if isinstance(data, memoryview):
        return data.nbytes
    return None


def _check_data(np: Any, shape: Any, dtype: Any, data: Any) -> None:
    if not isinstance(dtype, np.dtype):
        raise CorruptFileError(f"bad ndarray dtype {dtype!r}")
    count = _shape_count(np, shape)
    if dtype.hasobject:
        # Object items only from a list of items: raw bytes would be pointers.
        if not isinstance(data, list) or len(data) != count:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise CorruptFileError(
                f"object array of {count} items stored with {got} items"
            )
        return
    n = _raw_len(data)
    if n is None or n != count * dtype.itemsize:
        raise CorruptFileError(
            f"array of {count} x {dtype.itemsize} bytes stored with "
            f"{n if n is not None else type(data).__name__} bytes"
        )


def _check_ndarray_state(np: Any, state: Any) -> None:
    if type(state) is not tuple or len(state) not in (4, 5):
        raise CorruptFileError("bad ndarray state")
    if len(state) == 5 and type(state[0]) is not int:
        raise CorruptFileError("bad ndarray state version")
    shape, dtype, fortran, data = state[-4:]
    if not isinstance(fortran, (bool, int, np.bool_)):
        raise CorruptFileError("bad ndarray state order flag")
    _check_data(np, shape, dtype, data)


def _check_masked_state(np: Any, state: Any) -> None:
    # MaskedArray.__setstate__: (version, shape, dtype, fortran, data, mask,
    # fill_value); the mask is set like an ndarray of the mask dtype.
    if type(state) is not tuple or len(state) != 7:
        raise CorruptFileError("bad masked array state")
    _check_ndarray_state(np, state[:5])
    mask_dtype = np.ma.make_mask_descr(state[2])
    _check_data(np, state[1], mask_dtype, state[5])


def _masked_class(np: Any) -> Any:
    ma = sys.modules.get("numpy.ma")
    return ma.MaskedArray if ma is not None else None


def check_array_state(np: Any, arr: Any, state: Any) -> None:
    """Refuse a BUILD state numpy would read out of bounds or crash on.

    Only states that numpy's own ``__setstate__`` receives are checked (a
    subclass with its own is trusted with its own format).
    """
    setstate = type(arr).__setstate__
    if setstate is np.ndarray.__setstate__:
        _check_ndarray_state(np, state)
        return
    masked = _masked_class(np)
    if masked is not None and setstate is masked.__setstate__:
        _check_masked_state(np, state)


def _canonical_dtype(np: Any, dt: Any, depth: int = 0) -> Any:
    """The same dtype rebuilt by numpy's public constructor (which refuses
    overlapping object fields and fields outside the item)."""
    if depth > 32:
        raise CorruptFileError("dtype nested too deep")
    if dt.names is not None:
        formats, offsets, titles = [], [], []
        for name in dt.names:
            field = dt.fields[name]
            formats.append(_canonical_dtype(np, field[0], depth + 1))
            offsets.append(field[1])
            titles.append(field[2] if len(field) > 2 else None)
        spec: dict[str, Any] = {
            "names": list(dt.names),
            "formats": formats,
            "offsets": offsets,
            "itemsize": dt.itemsize,
        }
        if any(t is not None for t in titles):
            spec["titles"] = titles
        out = np.dtype(spec, align=dt.isalignedstruct)
        if dt.type is not np.void:
            out = np.dtype((np.record, out))
    elif dt.subdtype is not None:
        base, shape = dt.subdtype
        out = np.dtype((_canonical_dtype(np, base, depth + 1), shape))
    else:
        out = np.dtype(dt.str)
    if dt.metadata is not None:
        out = np.dtype(out, metadata=dict(dt.metadata))
    if out != dt or out.itemsize != dt.itemsize:
        raise CorruptFileError(f"inconsistent dtype state {dt!r}")
    return out


class SafeRules:
    """The checks of one safe load; see the module docstring."""

    def __init__(self, allowed: frozenset[tuple[str, str]]) -> None:
        self.allowed = allowed
        self._np: Any = None
        self._allowed_objs: dict[int, Any] = {}
        # Arrays and dtypes this load made, waiting for their one BUILD.
        self._fresh: dict[int, Any] = {}
        # id(file's dtype) -> (it, canonical copy): what arrays get.
        self._canon: dict[int, tuple[Any, Any]] = {}
        self._stand_ins = {
            "np:dtype": self.dtype,
            "np:reconstruct": self.reconstruct,
            "np:scalar": self.scalar,
            "np:frombuffer": self.frombuffer,
            "np:mareconstruct": self.mareconstruct,
            "np:masked": self.masked,
        }
        self._checked_calls = {id(f): f for f in self._stand_ins.values()}
        self.placeholder_types: tuple[type, ...] = ()
        # Placeholders of a para file built but not yet replaced by their array.
        self.placeholders: set[int] = set()

    # -- naming ---------------------------------------------------------------
    def resolve(self, module: str, name: str, importer: Any) -> Any:
        """The object a global of the file stands for, or UnsafeLoadError."""
        if (module, name) in self.allowed:
            obj = importer(module, name)
            self._allowed_objs[id(obj)] = obj
            return obj
        role = _NAMES.get((module, name))
        if role is None:
            raise _refuse_global(module, name)
        if role.startswith("np:"):
            if self._np is None:
                self._np = _np()
            return self._stand_ins[role]
        return importer(module, name)

    def checked(self, key: str, make: Any) -> Any:
        """A stand-in made by the caller that checks its own arguments."""
        fn = self._stand_ins.get(key)
        if fn is None:
            fn = self._stand_ins[key] = make()
            self._checked_calls[id(fn)] = fn
        return fn

    def _allowed(self, obj: Any) -> bool:
        return id(obj) in self._allowed_objs

    # -- calling --------------------------------------------------------------
    def check_call(self, func: Any, args: Any, kwargs: Any = None) -> None:
        """Refuse a REDUCE / INST / OBJ call that is not a data constructor."""
        if self._allowed(func):
            return
        if kwargs:
            raise _refuse(f"keyword arguments for {func!r}")
        if type(args) is not tuple:
            raise CorruptFileError("call arguments are not a tuple")
        if id(func) in self._checked_calls:
            return  # the stand-in checks its own arguments
        check = _CALLS.get(func)
        if check is None or not check(self, args):
            name = _name(func)
            raise UnsafeLoadError(
                f"refused call of {name} with {_types(args)}: trusted=False only "
                "calls data constructors with checked arguments. If you trust "
                f"this file's use of it, pass allowed_globals=[{name}]."
            )

    def check_new(self, cls: Any, args: Any, kwargs: Any = None) -> None:
        """Refuse a NEWOBJ / NEWOBJ_EX that is not a data constructor."""
        if self._allowed(cls):
            return
        if (
            isinstance(cls, type)
            and issubclass(cls, self.placeholder_types)
            and args == ()
            and not kwargs
        ):
            return
        self.check_call(cls, args, kwargs)

    def _reconstructor(self, args: tuple) -> bool:
        # copyreg._reconstructor(cls, base, state): protocol 0/1 objects.
        if len(args) != 3:
            return False
        cls, base, state = args
        if not isinstance(cls, type) or not isinstance(base, type):
            return False
        if base is object:
            return state is None and (
                self._allowed(cls) or issubclass(cls, self.placeholder_types)
            )
        if base not in _BASES or not issubclass(cls, base):
            return False
        return (cls is base or self._allowed(cls)) and isinstance(
            state, _SCALARS + _SEQUENCES
        )

    # -- numpy stand-ins ------------------------------------------------------
    def _array_class(self, cls: Any, base: Any = None) -> bool:
        np = self._np
        if not isinstance(cls, type) or not issubclass(cls, base or np.ndarray):
            return False
        known = (np.ndarray, np.matrix, np.memmap, np.recarray, np.ma.MaskedArray)
        return cls in known or self._allowed(cls)

    def use_dtype(self, dt: Any) -> Any:
        """The canonical copy of a dtype of the file, which it then cannot
        change any more (BUILD on it is refused from here on)."""
        np = self._np or _np()
        if not isinstance(dt, np.dtype):
            raise CorruptFileError(f"expected a numpy dtype, got {type(dt).__name__}")
        hit = self._canon.get(id(dt))
        if hit is not None:
            return hit[1]
        self._fresh.pop(id(dt), None)
        canon = _canonical_dtype(np, dt)
        self._canon[id(dt)] = (dt, canon)
        return canon

    def dtype(self, obj: Any, align: Any = False, copy: Any = False) -> Any:
        np = self._np
        if not (
            (isinstance(obj, str) and len(obj) <= 64)
            or obj is np.record
            or obj is np.void
        ) or not isinstance(align, (bool, int)):
            raise _refuse(f"numpy.dtype({_types((obj, align, copy))})")
        # Always a fresh copy: BUILD on numpy's shared float64 & co. would
        # change them for the whole process.
        dt = np.dtype(obj, bool(align), True)
        self._fresh[id(dt)] = dt
        return dt

    def reconstruct(self, cls: Any, shape: Any, code: Any) -> Any:
        np = self._np
        if not self._array_class(cls) or shape != (0,) or code not in (b"b", "b"):
            raise _refuse(f"numpy _reconstruct({_types((cls, shape, code))})")
        arr = np.ndarray.__new__(cls, (0,), "b")
        self._fresh[id(arr)] = arr
        return arr

    def mareconstruct(self, subtype: Any, base: Any, shape: Any, code: Any) -> Any:
        np = self._np
        if (
            not self._array_class(subtype, np.ma.MaskedArray)
            or not self._array_class(base)
            or shape != (0,)
            or code not in (b"b", "b")
        ):
            raise _refuse(f"numpy.ma _mareconstruct({_types((subtype, base))})")
        arr = np.ma.core._mareconstruct(subtype, base, (0,), "b")
        self._fresh[id(arr)] = arr
        return arr

    def masked(self, *args: Any) -> Any:
        if args:
            raise _refuse("numpy.ma.MaskedConstant with arguments")
        return self._np.ma.masked

    def scalar(self, dtype: Any, obj: Any = None) -> Any:
        np = self._np
        dtype = self.use_dtype(dtype)
        n = _raw_len(obj)
        if dtype.hasobject or n != dtype.itemsize:
            raise CorruptFileError(
                f"numpy scalar of dtype {dtype} stored with "
                f"{n if n is not None else type(obj).__name__} bytes"
            )
        core = getattr(np, "_core", None) or np.core  # numpy < 2: np.core
        return core.multiarray.scalar(dtype, obj)

    def frombuffer(self, buf: Any, dtype: Any, shape: Any, order: Any) -> Any:
        np = self._np
        dtype = self.use_dtype(dtype)
        if isinstance(buf, pickle.PickleBuffer):
            buf = buf.raw()
        if dtype.hasobject or order not in ("C", "F", "A"):
            raise CorruptFileError(f"bad numpy buffer of dtype {dtype}")
        count = _shape_count(np, shape)
        n = _raw_len(buf)
        if n is None or n != count * dtype.itemsize:
            raise CorruptFileError(
                f"numpy buffer of {n} bytes for {count} x {dtype.itemsize} bytes"
            )
        # The byte order stays as stored (see _unpickler._resolve).
        return np.frombuffer(buf, dtype, count).reshape(shape, order=order)

    # -- BUILD ----------------------------------------------------------------
    def build(self, inst: Any, state: Any) -> bool:
        """Check a BUILD; True if it was applied here, False: apply it as usual."""
        fresh = self._fresh.pop(id(inst), None)
        if fresh is not None:
            np = self._np
            if isinstance(inst, np.dtype):
                self._build_dtype(np, inst, state)
            else:
                self._build_array(np, inst, state)
            return True
        if isinstance(inst, self.placeholder_types):
            if type(state) is not dict:
                raise CorruptFileError("bad array metadata")
            self.placeholders.add(id(inst))
            return False
        if self._allowed(type(inst)) and not isinstance(inst, type):
            return False
        raise _refuse(f"BUILD (state setting) on {_name(type(inst))}")

    def _build_dtype(self, np: Any, dt: Any, state: Any) -> None:
        if type(state) is not tuple or not 8 <= len(state) <= 9:
            raise CorruptFileError("bad dtype state")
        dt.__setstate__(state)
        canon = _canonical_dtype(np, dt)
        # Reset to the state numpy itself gives the checked dtype.
        dt.__setstate__(canon.__reduce__()[2])

    def _build_array(self, np: Any, arr: Any, state: Any) -> None:
        masked = isinstance(arr, np.ma.MaskedArray)
        if type(state) is not tuple or len(state) < 4:
            raise CorruptFileError("bad ndarray state")
        at = len(state) - 3 if not masked else 2
        state = (*state[:at], self.use_dtype(state[at]), *state[at + 1 :])
        if masked:
            _check_masked_state(np, state)
        else:
            _check_ndarray_state(np, state)
        arr.__setstate__(state)

    # -- containers -----------------------------------------------------------
    def check_target(self, target: Any, kinds: tuple[type, ...], op: str) -> None:
        if type(target) in kinds or (
            self._allowed(type(target)) and not isinstance(target, type)
        ):
            return
        raise _refuse(f"{op} on {_name(type(target))}")


_BASES = (dict, list, set, frozenset, tuple, int, float, complex, str, bytes)


def _name(obj: Any) -> str:
    mod = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"'{mod}.{name}'" if mod else f"'{name}'"


def _types(args: Any) -> str:
    if type(args) is not tuple:
        return type(args).__name__
    return "(" + ", ".join(type(a).__name__ for a in args) + ")"


def _all(args: tuple, kinds: tuple) -> bool:
    return all(isinstance(a, kinds) and type(a) is not range for a in args)


def _number(rules: SafeRules, args: tuple) -> bool:
    return len(args) <= 2 and _all(args, _SCALARS)


def _text(rules: SafeRules, args: tuple) -> bool:
    if len(args) == 2:  # str(b, encoding) / bytes(s, encoding)
        return (
            isinstance(args[0], (str, bytes, bytearray))
            and isinstance(args[1], str)
            and args[1].lower() in _LATIN1
        )
    return len(args) <= 1 and _all(args, (str, bytes, bytearray, list, tuple))


def _container(rules: SafeRules, args: tuple) -> bool:
    return len(args) <= 1 and _all(args, _SEQUENCES)


def _empty(rules: SafeRules, args: tuple) -> bool:
    return not args


def _slice(rules: SafeRules, args: tuple) -> bool:
    return len(args) <= 3 and _all(args, (int, type(None)))


def _encode(rules: SafeRules, args: tuple) -> bool:
    return (
        len(args) == 2
        and isinstance(args[0], str)
        and isinstance(args[1], str)
        and args[1].lower() in _LATIN1
    )


def _deque(rules: SafeRules, args: tuple) -> bool:
    return (
        len(args) <= 2
        and (not args or isinstance(args[0], (list, tuple)))
        and (len(args) < 2 or isinstance(args[1], (int, type(None))))
    )


def _datetime(rules: SafeRules, args: tuple) -> bool:
    kinds = (int, bytes, str, type(None), datetime.timedelta, datetime.tzinfo)
    return len(args) <= 8 and _all(args, kinds)


def _decimal(rules: SafeRules, args: tuple) -> bool:
    return len(args) == 1 and _all(args, (str, int, float, tuple))


_CALLS: dict[Any, Any] = {
    bool: _number,
    int: _number,
    float: _number,
    complex: _number,
    str: _text,
    bytes: _text,
    bytearray: _text,
    tuple: _container,
    list: _container,
    set: _container,
    frozenset: _container,
    dict: _container,
    object: _empty,
    slice: _slice,
    range: _slice,
    copyreg._reconstructor: SafeRules._reconstructor,
    _codecs.encode: _encode,
    collections.OrderedDict: _container,
    collections.deque: _deque,
    datetime.date: _datetime,
    datetime.datetime: _datetime,
    datetime.time: _datetime,
    datetime.timedelta: _datetime,
    datetime.timezone: _datetime,
    decimal.Decimal: _decimal,
}
