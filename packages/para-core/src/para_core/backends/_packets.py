"""Pickling of task batches in the caller and of results in the workers.

Caller side, per batch::

    BatchedCalls --> ("map", f, [x, ...])         one function, one argument
                     ("star", f, [args, ...])     one function, no kwargs
                     ("calls", None, items)        anything else
        -- dumps(): C pickler; cloudpickle when the C pickler fails or refers
           to __main__ (objects only cloudpickle can send by value)
           --> bytes, or (bytes, [buffer, ...]) with protocol-5 buffers
           (array data) out of band

Worker side (``run_pickled_batch``): loads, run the batch in C (``map``,
``itertools.starmap``) or in a plain loop, pickle the result list the same
way, return the packet. The caller unpickles them in ``load_results``.

A transport session, when present, sees every object first
(``reduce_task_object``, as ``reducer_override`` of either pickler) and may
reduce results in the worker (``result_reducer``); a session that names its
``reduce_types`` sees only objects of those types, through the picklers'
dispatch tables (``TypedReducer``), which keeps the rest at C speed.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import sys
from collections.abc import Callable
from time import perf_counter
from typing import Any

import cloudpickle

from .._batch import BatchedCalls
from .._compact import compact_calls
from .._ledger import stamp

_PROTOCOL = 5
# A reference to these modules would resolve to another module in the
# process that loads the pickle: cloudpickle sends their objects by value.
_MAIN_NAMES = (b"__main__", b"__mp_main__")


class TypedReducer:
    """A transport reducer for objects of a few exact types only.

    Picklable (it travels to the workers as the result reducer) when
    ``reduce`` is. A type may be named ``"module:qualname"``: it counts only
    once its module is imported in the process that pickles (no object of a
    type can exist before), so that sending the reducer imports nothing.
    """

    __slots__ = ("_tables", "reduce", "seconds", "types")

    def __init__(
        self, reduce: Callable[[Any], Any], types: tuple[type | str, ...]
    ) -> None:
        self.reduce = reduce
        self.types = types
        # Time spent in ``reduce``: a transport that writes a large array into
        # shared memory on the way is not pickling (see _note_pickling).
        self.seconds = 0.0
        # Built once per base table: a session pickles many batches, and
        # copying cloudpickle's table (a ChainMap) costs ~35 us each time.
        self._tables: dict[int, tuple[Any, tuple, dict]] = {}

    def __reduce__(self) -> tuple:
        return TypedReducer, (self.reduce, self.types)

    def _resolved(self) -> tuple[type, ...]:
        out = []
        for t in self.types:
            if isinstance(t, str):
                module, _, name = t.partition(":")
                obj = sys.modules.get(module)
                for part in name.split(".") if obj is not None else ():
                    obj = getattr(obj, part, None)
                if not isinstance(obj, type):
                    continue
                t = obj
            out.append(t)
        return tuple(out)

    def table(self, base: Any) -> dict:
        """``base`` (a dispatch table) with our types routed to ``reduce``."""
        types = self._resolved()
        known = self._tables.get(id(base))
        if known is not None and known[0] is base and known[1] == types:
            return known[2]
        reduce = self.reduce

        def reduce_or_default(obj: Any) -> Any:
            start = perf_counter()
            rv = reduce(obj)
            self.seconds += perf_counter() - start
            return obj.__reduce_ex__(_PROTOCOL) if rv is NotImplemented else rv

        table = dict(base)
        table.update(dict.fromkeys(types, reduce_or_default))
        self._tables[id(base)] = (base, types, table)
        return table


def session_reducer(
    session: Any, attribute: str
) -> Callable[[Any], Any] | TypedReducer | None:
    """The session's reducer ``attribute``, limited to its ``reduce_types``."""
    if session is None:
        return None
    reduce = getattr(session, attribute)
    types = tuple(getattr(session, "reduce_types", ()) or ())
    if reduce is None or not types:
        return reduce
    return TypedReducer(reduce, types)


class _CPickler(pickle.Pickler):
    """The C pickler, with the transport session's reducer in front."""

    def __init__(self, file: Any, reduce_first: Any, buffer_callback: Any) -> None:
        # Instance attributes set before __init__: the C pickler reads them
        # there and calls them without a Python frame of ours in between.
        if type(reduce_first) is TypedReducer:
            self.dispatch_table = reduce_first.table(copyreg.dispatch_table)
        else:
            self.reducer_override = reduce_first
        super().__init__(file, protocol=_PROTOCOL, buffer_callback=buffer_callback)


class _TypedSessionPickler(cloudpickle.Pickler):
    """cloudpickle, with the session's few types routed to it by the
    dispatch table: no Python call of ours per pickled object."""

    def __init__(self, file: Any, reduce_first: Any, buffer_callback: Any) -> None:
        self.dispatch_table = reduce_first.table(cloudpickle.Pickler.dispatch_table)
        super().__init__(file, protocol=_PROTOCOL, buffer_callback=buffer_callback)


class _SessionPickler(cloudpickle.Pickler):
    """cloudpickle, but the transport session gets the first word."""

    def __init__(self, file: Any, reduce_first: Any, buffer_callback: Any) -> None:
        self._reduce_first = reduce_first
        super().__init__(file, protocol=_PROTOCOL, buffer_callback=buffer_callback)

    def reducer_override(self, obj: Any) -> Any:
        rv = self._reduce_first(obj)
        if rv is not NotImplemented:
            return rv
        return super().reducer_override(obj)


def _c_dump(obj: Any, reduce_first: Callable[[Any], Any] | None) -> Any:
    """Packet of the C pickler, or None when only cloudpickle can do it right."""
    if cloudpickle.list_registry_pickle_by_value():
        return None
    buffers: list[pickle.PickleBuffer] = []
    pickler = None
    try:
        if reduce_first is None:
            data = pickle.dumps(obj, _PROTOCOL, buffer_callback=buffers.append)
        else:
            buf = io.BytesIO()
            pickler = _CPickler(buf, reduce_first, buffers.append)
            pickler.dump(obj)
            data = buf.getvalue()
    except Exception:
        # Lambdas, local functions and classes, modules, ...: by value.
        return None
    # The C pickler refers to __main__ objects by name; the other process
    # has another __main__. Most hits of the cheap scan are strings, not
    # references (scikit-learn's tasks carry the warning filters, where
    # "__main__" is a module pattern): the pickler's memo tells them apart.
    # Buffers (array data) are out of band: not scanned.
    if _MAIN_NAMES[0] in data or _MAIN_NAMES[1] in data:
        if pickler is None:
            # pickle.dumps keeps the hot path short; its memo is gone: the
            # rare hit pickles again to read one.
            pickler = pickle.Pickler(io.BytesIO(), _PROTOCOL, buffer_callback=_keep_out)
            pickler.dump(obj)
        if _names_main(pickler):
            return None
    return _pack(data, buffers)


def _keep_out(_buffer: Any) -> bool:
    """A buffer callback that keeps array data out of a throwaway pickle."""
    return False


# Memoized objects that cannot be pickled by name: nothing to check.
_PLAIN = (str, bytes, int, float, tuple, list, dict, set, frozenset)
_MAIN_MODULES = ("__main__", "__mp_main__")


def _names_main(pickler: Any) -> bool:
    """True if ``pickler`` wrote an object by reference to ``__main__``.

    Everything pickled by name (classes, functions, singletons) is in the
    memo, with its ``__module__``. The pickler looks up in ``sys.modules``
    the ones without one, and falls back to ``__main__``: such an object
    counts, unless it was surely pickled by value (its reduction is not a
    name). In doubt, True: the caller then takes cloudpickle, only slower.
    """
    table = getattr(pickler, "dispatch_table", copyreg.dispatch_table)
    for _, memoized in pickler.memo.copy().values():
        if isinstance(memoized, _PLAIN):
            continue
        module = getattr(memoized, "__module__", None)
        if module in _MAIN_MODULES:
            return True
        if module is None:
            if isinstance(memoized, type) or callable(memoized):
                return True
            reduce = table.get(type(memoized))
            try:
                how = reduce(memoized) if reduce else memoized.__reduce_ex__(_PROTOCOL)
            except Exception:
                return True
            if isinstance(how, str):
                return True
    return False


def _cloud_dump(obj: Any, reduce_first: Callable[[Any], Any] | None) -> Any:
    buf = io.BytesIO()
    buffers: list[pickle.PickleBuffer] = []
    if reduce_first is None:
        pickler = cloudpickle.Pickler(
            buf, protocol=_PROTOCOL, buffer_callback=buffers.append
        )
    elif type(reduce_first) is TypedReducer:
        pickler = _TypedSessionPickler(buf, reduce_first, buffers.append)
    else:
        pickler = _SessionPickler(buf, reduce_first, buffers.append)
    pickler.dump(obj)
    return _pack(buf.getvalue(), buffers)


def _dump(obj: Any, reduce_first: Callable[[Any], Any] | None) -> Any:
    data = _c_dump(obj, reduce_first)
    return _cloud_dump(obj, reduce_first) if data is None else data


# -- packets: pickle bytes and out-of-band buffers ----------------------------
#
# Protocol-5 buffers (numpy arrays, PickleBuffer) leave the pickle stream: a
# file-backed C pickler copies in-band buffers at several times memcpy's cost,
# and the __main__ scan would read them too. Each is copied once, right away
# (a task sees its data as it was when dispatched), into a bytearray of its
# own -- bytes if it was read-only -- so arrays arrive writable or read-only
# as they would in-band, and a result kept alive does not pin its batch.


def _pack(data: bytes, buffers: list[pickle.PickleBuffer]) -> Any:
    if not buffers:
        return data
    owned: list[Any] = []
    for pb in buffers:
        with pb.raw() as raw:
            owned.append(bytes(raw) if raw.readonly else bytearray(raw))
        pb.release()
    return data, owned


def _loads(packet: Any) -> Any:
    if type(packet) is bytes:
        return pickle.loads(packet)
    data, buffers = packet
    return pickle.loads(data, buffers=buffers)


def packet_size(packet: Any) -> int:
    """Bytes held by a packet of :func:`dumps_batch` or of a worker's results."""
    if type(packet) is bytes:
        return len(packet)
    data, buffers = packet
    return len(data) + sum(len(b) for b in buffers)


def _find_culprit(batch: Any, reduce_first: Callable[[Any], Any] | None) -> str:
    """Name the first function or argument of ``batch`` that does not pickle."""
    if type(batch) is not BatchedCalls:
        return repr(batch)
    for pos, (func, args, kwargs) in enumerate(batch.items):
        task = f"task #{batch.first_index + pos}"
        parts = [("the function", func)]
        parts += [(f"argument {i}", a) for i, a in enumerate(args)]
        parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
        for label, value in parts:
            try:
                _cloud_dump(value, reduce_first)
            except Exception as exc:
                return (
                    f"{label} of {task}, {value!r}, cannot be pickled "
                    f"({type(exc).__name__}: {exc})"
                )
    return "an object of the batch"


_SESSION: Any = object()  # dumps_batch: take the reducer from the session


def dumps_batch(
    batch: Any,
    session: Any = None,
    cloud: bool = False,
    *,
    reduce_first: Any = _SESSION,
) -> tuple[Any, bool]:
    """Pickle ``batch`` (a BatchedCalls) for ``run_pickled_batch``.

    Returns the packet (pickle bytes, or the bytes and their out-of-band
    buffers) and whether cloudpickle was needed; ``cloud=True``
    goes to cloudpickle at once (a previous batch of the call needed it).
    ``reduce_first``: the session's task reducer when the caller made it
    already (``session_reducer``), so that it serves all its batches.
    PicklingError names the function or argument that failed.
    """
    if reduce_first is _SESSION:
        reduce_first = session_reducer(session, "reduce_task_object")
    if type(batch) is BatchedCalls:
        func, single, args = batch._func, batch._single, batch._args
        if args is None:
            func, single, args = compact_calls(batch._items)
        if args is None:
            kind, func, args = "calls", None, batch._items
        else:
            kind = "map" if single else "star"
        payload = (kind, func, args, batch._backend, batch._n_jobs)
    else:
        # Any other argument-less callable (backend API used directly).
        payload = ("call", batch, None, None, None)
    try:
        out = None if cloud else _c_dump(payload, reduce_first)
        if out is None:
            return _cloud_dump(payload, reduce_first), True
        return out, False
    except Exception as exc:
        culprit = _find_culprit(batch, reduce_first)
        raise pickle.PicklingError(
            f"Could not pickle the task to send it to the workers: {culprit}. "
            "Use objects importable from a module, or wrap the function with "
            "wrap_non_picklable_objects."
        ) from exc


def pack_reducer(reducer: Any) -> Any:
    """``reducer`` as pickle bytes, sent with every batch of a session.

    Bytes cost the executor's (cloudpickle) pickler a fraction of an object
    graph naming classes, and the worker unpickles them once per session.
    """
    if reducer is None:
        return None
    try:
        return pickle.dumps(reducer, _PROTOCOL)
    except Exception:
        return cloudpickle.dumps(reducer, _PROTOCOL)


# Worker side: the last few sessions' reducers, by their pickle bytes.
_REDUCERS: dict[bytes, Any] = {}


def _unpack_reducer(packed: Any) -> Any:
    if type(packed) is not bytes:
        return packed
    reducer = _REDUCERS.get(packed)
    if reducer is None:
        reducer = pickle.loads(packed)
        if len(_REDUCERS) >= 8:
            _REDUCERS.clear()
        _REDUCERS[packed] = reducer
    return reducer


def run_pickled_batch(
    payload: Any, result_reducer: Any = None, token: int | None = None
) -> Any:
    """Worker side: unpickle a batch, run it, return its pickled results.

    Results travel as bytes pickled here (C pickler first), not by loky's
    cloudpickle-based result pickler: cheaper, and the same for every backend.
    ``token``: stamped in the ledger first (see ``_ledger``).
    """
    if token is not None:
        stamp(token)
    kind, func, data, backend, n_jobs = _loads(payload)
    if kind == "call":
        results = func()
    else:
        # The batch as it was in the caller (``data`` is not copied); the
        # arguments are freed before the results are pickled.
        nested = (backend, n_jobs)
        if kind == "calls":
            batch = BatchedCalls(data, nested)
        else:
            batch = BatchedCalls._from_args(func, data, kind == "map", nested)
        del data
        results = batch()
        del batch
    return _dump(results, _unpack_reducer(result_reducer))


def load_results(data: Any) -> list:
    """Caller side: the result list of a batch run by ``run_pickled_batch``."""
    return _loads(data)
