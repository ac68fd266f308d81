"""Content hashes of Python objects, streamed through the C pickler.

Data flow::

    obj --C Pickler(protocol 5, no memo)--> write() == hash.update --> digest
            |-- persistent_id:   dict / set -> items in a canonical order
            '-- reducer_override: ndarray   -> (class, dtype, shape, order)
                                               + PickleBuffer(data), no copy
                  (md5/sha1, >= 32 MB: + the digests of its 8 MB pieces,
                   computed on every core, instead of the data)

The pickler writes its frames straight into ``hash.update`` and large
buffers (array data, big bytes) are handed over without a copy, so hashing a
1 GB array never builds a 1 GB pickle in memory. numpy is only touched when
it is already imported by the caller.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
import threading
from typing import Any

__all__ = ["Hasher", "NumpyHasher", "hash"]

_HASH_NAMES = ("md5", "sha1", "xxh3")
_PROTOCOL = 5


def _new_hash(hash_name: str) -> Any:
    factory = _FACTORIES.get(hash_name)
    if factory is None:
        factory = _factory(hash_name)
    return factory()


# Hash constructors looked up once: Memory builds one hash object per call.
_FACTORIES: dict[str, Any] = {}


def _factory(hash_name: str) -> Any:
    if hash_name == "xxh3":
        try:
            import xxhash
        except ImportError:
            raise ValueError(
                "hash_name='xxh3' needs the xxhash package: "
                "pip install 'para-cache[fast-hash]', or use 'md5' or 'sha1'."
            ) from None
        factory = xxhash.xxh3_128
    elif hash_name in _HASH_NAMES:
        # Not for security: keeps md5 usable on FIPS-mode systems.
        factory = functools.partial(getattr(hashlib, hash_name), usedforsecurity=False)
    else:
        raise ValueError(
            f"Valid options for 'hash_name' are {_HASH_NAMES}. "
            f"Got hash_name={hash_name!r} instead."
        )
    _FACTORIES[hash_name] = factory
    return factory


def fast_hash_name() -> str:
    """Return ``"xxh3"`` when xxhash is installed, else ``"md5"``."""
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return "md5"
    return "xxh3"


class _Sink:
    """File-like object feeding every write into the current hash object."""

    __slots__ = ("update",)

    def __init__(self) -> None:
        self.update: Any = None

    def write(self, data: Any) -> None:
        # Called once per 64 KiB frame or large buffer, never per object.
        self.update(data)


# Persistent ids are written with their own opcode, so these tags cannot be
# confused with a user's tuple; plain strings keep digests independent of
# where this package is installed or vendored.
_SORTED = "sorted"
_ARRAY = "ndarray"
_PIECES = "pieces"

# md5 and sha1 run at well under memory speed on one core (~0.7 GB/s here);
# hashlib releases the GIL, so big buffers are hashed in pieces on all cores.
_TREE_MIN = 32 * 2**20
_TREE_PIECE = 8 * 2**20
_TREE_HASHES = ("md5", "sha1")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _piece_digests(hash_name: str, raw: Any) -> bytes:
    """Digests of the ``_TREE_PIECE``-byte pieces of ``raw``, in order."""
    view = memoryview(raw)
    starts = range(0, len(view), _TREE_PIECE)
    digests: list[bytes | None] = [None] * len(starts)
    n_threads = min(_cpus(), len(starts))

    def work(first: int) -> None:
        for i in range(first, len(starts), n_threads):
            h = _new_hash(hash_name)
            h.update(view[starts[i] : starts[i] + _TREE_PIECE])
            digests[i] = h.digest()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, n_threads)]
    for t in threads:
        t.start()
    try:
        work(0)
    finally:
        for t in threads:
            t.join()
    if any(d is None for d in digests):
        raise RuntimeError("para_cache.hash: a hashing thread failed")
    return b"".join(digests)  # type: ignore[arg-type]


def _item_digest(obj: Any) -> bytes:
    # Sort key for unorderable keys: equal values give equal digests.
    return _hash_bytes(obj, "md5", False)


# Types whose values are totally ordered by ``<`` (floats are not: NaN; nor
# are tuples or frozensets). Anything else is ordered by its own digest.
_TOTALLY_ORDERED = {
    frozenset(types) for types in ({str}, {int}, {bytes}, {int, bool}, {bool})
}


def _ordered_by_value(values: Any) -> bool:
    return frozenset(map(type, values)) in _TOTALLY_ORDERED


def _sorted_dict(d: dict) -> tuple[list, list]:
    # Keys and values as two lists: no pair tuples for the pickler to visit.
    if _ordered_by_value(d):  # iterating a dict yields its keys, at C speed
        keys = sorted(d)
    else:
        keys = sorted(d, key=_item_digest)
    return keys, list(map(d.__getitem__, keys))


def _sorted_set(values: Any) -> list:
    values = list(values)
    if _ordered_by_value(values):
        values.sort()
    else:
        values.sort(key=_item_digest)
    return values


class _HashPickler(pickle.Pickler):
    """C pickler that normalises the few types whose bytes depend on history."""

    def __init__(self, sink: _Sink, coerce_mmap: bool) -> None:
        super().__init__(sink, protocol=_PROTOCOL)
        self.sink = sink
        # No memo: equal values hash equal whatever object identities they share.
        self.fast = True
        self._coerce_mmap = coerce_mmap
        np = sys.modules.get("numpy")
        self._ndarray = np.ndarray if np is not None else None
        self._np = np
        self.tree_hash: str | None = None  # set per dump: md5/sha1 or None

    def persistent_id(self, obj: Any) -> Any:
        # Called for every object: keep the common path to two type checks.
        t = type(obj)
        if t is dict:
            if len(obj) < 2:
                return None
            return (_SORTED, "dict", *_sorted_dict(obj))
        if t is set or t is frozenset:
            return (_SORTED, t.__name__, _sorted_set(obj))
        return None

    def reducer_override(self, obj: Any) -> Any:
        # Only called for non-builtin types, so arrays cost nothing elsewhere.
        ndarray = self._ndarray
        if ndarray is not None and isinstance(obj, ndarray):
            return tuple, (self._array_id(obj),)
        return NotImplemented

    def _array_id(self, arr: Any) -> Any:
        np = self._np
        if arr.dtype.hasobject:
            # Object arrays hold references: hash their items as a list.
            klass = type(arr)
            return (_ARRAY, klass, arr.dtype, arr.shape, "O", arr.ravel().tolist())
        if arr.flags.c_contiguous:
            order, data = "C", arr
        elif arr.flags.f_contiguous:
            order, data = "F", arr.T
        else:
            # A strided view keeps its memory layout in the hash (as joblib
            # does): it differs from its C and Fortran copies.
            order, data = ("strides", arr.strides), np.ascontiguousarray(arr)
        klass = type(arr)
        if self._coerce_mmap and isinstance(arr, np.memmap):
            klass = np.ndarray
        # A uint8 view gives every dtype (datetime64 included) a buffer.
        raw = data.reshape(-1).view(np.uint8)
        if self.tree_hash is not None and raw.nbytes >= _TREE_MIN:
            digests = _piece_digests(self.tree_hash, raw)
            return (_ARRAY, klass, arr.dtype, arr.shape, order, _PIECES, digests)
        return (_ARRAY, klass, arr.dtype, arr.shape, order, pickle.PickleBuffer(raw))


def _hash_bytes(obj: Any, hash_name: str, coerce_mmap: bool) -> bytes:
    return _feed(hash_name, obj, coerce_mmap).digest()


# Idle picklers per thread, reused by the next hash: building one costs
# about as much as hashing a few small arguments (the cache-hit path).
_IDLE = threading.local()


class _Cyclic(Exception):
    """The object refers to itself: hash it again with a memo."""


class _CyclicHashPickler(_HashPickler):
    """Pickler for self-referencing objects: memo on, as pickle needs for
    cycles, and one persistent id per dict/set object, so that a cycle through
    a dict ends at the second visit instead of recursing forever."""

    def __init__(self, sink: _Sink, coerce_mmap: bool) -> None:
        super().__init__(sink, coerce_mmap)
        self.fast = False
        self._ids: dict[int, tuple[Any, Any]] = {}

    def persistent_id(self, obj: Any) -> Any:
        t = type(obj)
        if t is not dict and t is not set and t is not frozenset:
            return None
        seen = self._ids.get(id(obj))
        if seen is not None:
            return seen[1]
        pid = super().persistent_id(obj)
        if pid is not None:
            self._ids[id(obj)] = (obj, pid)  # obj kept alive: ids stay unique
        return pid


def _unpicklable(obj: Any, exc: BaseException) -> pickle.PicklingError:
    # joblib's wording, which callers match on.
    err = pickle.PicklingError(f"PicklingError while hashing {obj!r}: {exc!r}")
    err.__cause__ = exc
    return err


def _is_unpicklable(exc: BaseException) -> bool:
    # The C pickler reports a function defined in a function (not importable)
    # as an AttributeError; the Python pickler, as joblib sees it, as a
    # PicklingError.
    return isinstance(exc, pickle.PicklingError) or (
        isinstance(exc, AttributeError) and "Can't pickle" in str(exc)
    )


def _dump_into(h: Any, obj: Any, coerce_mmap: bool) -> None:
    """Feed ``obj`` into ``h``; raise ``_Cyclic`` (``h`` then holds a partial
    stream) when ``obj`` refers to itself."""
    key = (coerce_mmap, "numpy" in sys.modules)
    try:
        idle = _IDLE.picklers
    except AttributeError:
        idle = _IDLE.picklers = {}
    stack = idle.get(key)
    # Popped while in use, so nested hashing (sort keys) gets its own.
    pickler = stack.pop() if stack else _HashPickler(_Sink(), coerce_mmap)
    pickler.sink.update = h.update
    name = getattr(h, "name", None)
    pickler.tree_hash = name if name in _TREE_HASHES else None
    try:
        pickler.dump(obj)
    except (ValueError, RecursionError) as exc:
        # Without a memo, pickle reports cycles as one of these two.
        if isinstance(exc, ValueError) and "cyclic" not in str(exc):
            raise
        raise _Cyclic from None
    except (pickle.PicklingError, AttributeError) as exc:
        if _is_unpicklable(exc):
            raise _unpicklable(obj, exc) from exc
        raise
    pickler.sink.update = None
    idle.setdefault(key, []).append(pickler)


def _dump_cyclic(h: Any, obj: Any, coerce_mmap: bool) -> None:
    pickler = _CyclicHashPickler(_Sink(), coerce_mmap)
    pickler.sink.update = h.update
    name = getattr(h, "name", None)
    pickler.tree_hash = name if name in _TREE_HASHES else None
    try:
        pickler.dump(obj)
    except (pickle.PicklingError, AttributeError) as exc:
        if _is_unpicklable(exc):
            raise _unpicklable(obj, exc) from exc
        raise


def _feed(hash_name: str, obj: Any, coerce_mmap: bool) -> Any:
    """A new hash object of ``hash_name`` fed with ``obj``."""
    h = _new_hash(hash_name)
    try:
        _dump_into(h, obj, coerce_mmap)
    except _Cyclic:
        h = _new_hash(hash_name)
        _dump_cyclic(h, obj, coerce_mmap)
    return h


def hash(obj: Any, hash_name: str = "md5", coerce_mmap: bool = False) -> str:
    """Return a hex digest identifying the value of ``obj``.

    Equal values hash equal: dicts and sets whatever their order, numpy
    arrays by class, dtype, shape, memory order (strides, for a view that is
    neither C- nor Fortran-contiguous) and data, nested containers element by
    element; objects that refer to themselves are hashed too. The object is
    streamed into the hash, never pickled into one big buffer.

    Parameters
    ----------
    obj : object
        Any picklable object.
    hash_name : {"md5", "sha1", "xxh3"}, default "md5"
        Algorithm. ``"xxh3"`` (128-bit, needs ``xxhash``) is an order of
        magnitude faster and is what :class:`Memory` uses when available.
    coerce_mmap : bool, default False
        Hash a ``numpy.memmap`` like the ``numpy.ndarray`` holding the same data.

    Returns
    -------
    str
        Hexadecimal digest (32 characters for md5 and xxh3, 40 for sha1).

    Raises
    ------
    ValueError
        If ``hash_name`` is not one of the accepted names.
    pickle.PicklingError
        If ``obj`` holds something that pickle cannot serialize by reference,
        such as a function defined inside another function (the message
        starts with ``PicklingError while hashing``, as joblib's).

    Notes
    -----
    Digests are para's own, not joblib's (the equality rules are the same).
    With md5 and sha1, an array of 32 MB or more enters the hash as the
    digests of its 8 MB pieces, computed on all the cores the process may
    use: these algorithms run far below memory speed on one core.

    Examples
    --------
    >>> hash({"a": 1, "b": 2}) == hash({"b": 2, "a": 1})
    True
    """
    return _feed(hash_name, obj, coerce_mmap).hexdigest()


class Hasher:
    """Hash objects with the same rules as :func:`hash`.

    Parameters
    ----------
    hash_name : {"md5", "sha1", "xxh3"}, default "md5"
        Algorithm.

    Examples
    --------
    >>> Hasher().hash([1, 2]) == hash([1, 2])
    True
    """

    def __init__(self, hash_name: str = "md5") -> None:
        self._hash_name = hash_name
        self._hash = _new_hash(hash_name)
        self.coerce_mmap = False

    def hash(self, obj: Any, return_digest: bool = True) -> str | None:
        """Feed ``obj`` into the running hash and return the hex digest.

        Parameters
        ----------
        obj : object
            Object to add to the hash.
        return_digest : bool, default True
            Return the digest of everything fed so far; None otherwise.

        Returns
        -------
        str or None
            The hexadecimal digest.
        """
        before = self._hash.copy()
        try:
            _dump_into(self._hash, obj, self.coerce_mmap)
        except _Cyclic:
            self._hash = before
            _dump_cyclic(self._hash, obj, self.coerce_mmap)
        if return_digest:
            return self._hash.hexdigest()
        return None


class NumpyHasher(Hasher):
    """:class:`Hasher` with the numpy options of :func:`hash`.

    Parameters
    ----------
    hash_name : {"md5", "sha1", "xxh3"}, default "md5"
        Algorithm.
    coerce_mmap : bool, default False
        Hash memmaps like in-memory arrays.
    """

    def __init__(self, hash_name: str = "md5", coerce_mmap: bool = False) -> None:
        super().__init__(hash_name=hash_name)
        self.coerce_mmap = coerce_mmap
