"""The compact dispatch path: batch forms, picklers and result sizes."""

from __future__ import annotations

import pickle

import pytest
from _helpers import Blob, Box, add, blob_info, flags_of, identity, square

from para_core import (
    BatchedCalls,
    Parallel,
    ThreadingBackend,
    delayed,
    register_parallel_backend,
)
from para_core._compact import compact_calls as _compact_calls
from para_core.backends._packets import (
    TypedReducer,
    dumps_batch,
    load_results,
    packet_size,
    run_pickled_batch,
)


def test_compact_forms():
    f, single, args = _compact_calls([delayed(square)(i) for i in range(5)])
    assert (f, single, args) == (square, True, [0, 1, 2, 3, 4])
    f, single, args = _compact_calls([delayed(add)(i, i) for i in range(3)])
    assert (f, single, args) == (add, False, [(0, 0), (1, 1), (2, 2)])
    # Mixed arities keep the tuples.
    f, single, args = _compact_calls([delayed(add)(1), delayed(add)(1, 2)])
    assert (f, single, args) == (add, False, [(1,), (1, 2)])
    # Bound methods are new objects at each attribute access but equal.
    box = Box(3)
    f, single, args = _compact_calls([delayed(box.times)(i) for i in range(3)])
    assert f == box.times and single and args == [0, 1, 2]


@pytest.mark.parametrize(
    "items",
    [
        [delayed(square)(1), delayed(identity)(2)],  # two functions
        [delayed(add)(1, b=2), delayed(add)(3)],  # kwargs
        [(square, [1], {})],  # args not a tuple
        [(square, (1,), None)],  # kwargs not a dict
        [(square, (1,), {}, "extra")],  # not a triple
        [(square, (1,))],
        [42],
    ],
)
def test_compact_refuses_what_it_cannot_keep_exact(items):
    assert _compact_calls(items) == (None, False, None)


def test_generator_args_are_not_consumed_by_the_checks():
    # f(*args) with an iterator as args: the scan must not touch it.
    items = [(add, iter((1, 2)), {})]
    assert _compact_calls(items) == (None, False, None)
    assert BatchedCalls(items)() == [3]


def test_compact_batch_items_round_trip():
    batch = BatchedCalls._from_args(square, [1, 2], True)
    assert len(batch) == 2
    assert batch() == [1, 4]
    assert batch.items == [(square, (1,), {}), (square, (2,), {})]
    assert "tasks #0-#1 (calls of square)" in batch.describe()
    clone = pickle.loads(pickle.dumps(batch))
    assert clone() == [1, 4]


@pytest.mark.parametrize(
    "batch",
    [
        BatchedCalls([delayed(square)(i) for i in range(4)]),
        BatchedCalls([delayed(add)(i, b=1) for i in range(4)]),
        BatchedCalls._from_args(add, [(i, 1) for i in range(4)], False),
    ],
)
def test_pickled_batches_run_the_same(batch):
    payload, cloud = dumps_batch(batch)
    assert not cloud  # importable functions and ints: the C pickler suffices
    assert load_results(run_pickled_batch(payload)) == batch()


def test_interactive_functions_go_through_cloudpickle():
    offset = 5
    batch = BatchedCalls([delayed(lambda x: x + offset)(i) for i in range(3)])
    payload, cloud = dumps_batch(batch)
    assert cloud
    assert load_results(run_pickled_batch(payload)) == [5, 6, 7]
    # Later batches of the call skip the C pickler, with the same result.
    payload, cloud = dumps_batch(batch, cloud=True)
    assert cloud and load_results(run_pickled_batch(payload)) == [5, 6, 7]


@pytest.mark.parametrize("session", [False, True])
def test_the_string_main_is_no_reference_to_main(session):
    # scikit-learn's tasks carry the warning filters, where "__main__" is a
    # module pattern: no reason to leave the C pickler (plain, or with a
    # transport session's reducer in front).
    filters = [("default", None, DeprecationWarning, "__main__", 0)]
    batch = BatchedCalls([delayed(identity)(filters), delayed(identity)("__mp_main__")])
    if session:
        reducer = TypedReducer(lambda obj: NotImplemented, (complex,))
        payload, cloud = dumps_batch(batch, reduce_first=reducer)
    else:
        payload, cloud = dumps_batch(batch)
    assert not cloud
    assert load_results(run_pickled_batch(payload)) == [filters, "__mp_main__"]


def _main_objects(module_name):
    def triple(x):
        return 3 * x

    class Point:
        def __init__(self, x):
            self.x = x

        def __eq__(self, other):
            return type(other).__name__ == "Point" and other.x == self.x

    class Named:
        # Pickled by name: its reduction is a string.
        def __reduce__(self):
            return "the_named"

    Named.__module__ = None
    the_named = Named()
    for obj, name in ((triple, "triple"), (Point, "Point")):
        obj.__module__ = module_name
        obj.__qualname__ = name
    return {"triple": triple, "Point": Point, "the_named": the_named}


@pytest.mark.parametrize("session", [False, True])
@pytest.mark.parametrize("module_name", ["__main__", "__mp_main__"])
@pytest.mark.parametrize("what", ["function", "class", "instance", "by name"])
def test_references_to_main_go_through_cloudpickle(
    monkeypatch, module_name, what, session
):
    # The C pickler would write them as names of the caller's __main__, which
    # the workers' __main__ does not have: cloudpickle sends them by value.
    import sys
    import types

    main = sys.modules.setdefault(module_name, types.ModuleType(module_name))
    if module_name not in sys.modules:
        monkeypatch.setitem(sys.modules, module_name, main)
    objects = _main_objects(module_name)
    for name, obj in objects.items():
        monkeypatch.setattr(main, name, obj, raising=False)
    if what == "by name":
        # Found by a search of sys.modules, which falls back to __main__.
        monkeypatch.setattr(
            sys.modules["__main__"], "the_named", objects["the_named"], raising=False
        )
    call = {
        "function": delayed(objects["triple"])(2),
        "class": delayed(identity)(objects["Point"]),
        "instance": delayed(identity)(objects["Point"](4)),
        "by name": delayed(identity)(objects["the_named"]),
    }[what]
    reducer = TypedReducer(lambda obj: NotImplemented, (complex,)) if session else None
    payload, cloud = dumps_batch(BatchedCalls([call]), reduce_first=reducer)
    assert cloud
    (result,) = load_results(run_pickled_batch(payload))
    if what == "function":
        assert result == 6
    elif what == "class":
        assert result.__name__ == "Point"
    elif what == "instance":
        assert result.x == 4
    else:  # this process's __main__ has it, the workers' would not
        assert result is objects["the_named"]


def test_unpicklable_argument_is_named():
    import threading

    batch = BatchedCalls([delayed(identity)(1), delayed(identity)(threading.Lock())])
    with pytest.raises(pickle.PicklingError, match="argument 0 of task #1"):
        dumps_batch(batch)


@pytest.mark.parametrize("return_as", ["list", "generator", "generator_unordered"])
def test_mixed_tasks_in_one_call(return_as):
    box = Box(2)
    tasks = []
    for i in range(300):
        if i % 7 == 0:
            tasks.append(delayed(add)(i, b=1))
        elif i % 11 == 0:
            tasks.append(delayed(box.times)(i))
        else:
            tasks.append(delayed(square)(i))
    expected = [f(*a, **kw) for f, a, kw in tasks]
    out = Parallel(n_jobs=2, return_as=return_as, batch_size="auto")(iter(tasks))
    out = list(out)
    if return_as == "generator_unordered":
        assert sorted(out) == sorted(expected)
    else:
        assert out == expected


def test_large_results_make_smaller_batches_in_generators():
    # 100 KB results: the generator keeps batches near 8 MB of results.
    gen = Parallel(n_jobs=2, return_as="generator")(
        delayed(bytes)(100_000) for _ in range(3000)
    )
    call = gen.gi_frame.f_locals["self"]
    sizes = []
    for _ in gen:
        sizes.append(max((len(b) for b, _f, _s in call.inflight.values()), default=0))
    assert call.result_bytes >= 100_000
    assert max(sizes) <= 8 * 2**20 // 100_000 + 1


# -- protocol-5 buffers travel out of band -----------------------------------


def test_buffers_leave_the_pickle_stream_and_keep_their_writeability():
    batch = BatchedCalls(
        [
            delayed(blob_info)(Blob(bytearray(b"w" * 1000))),
            delayed(blob_info)(Blob(b"r" * 1000)),
        ]
    )
    payload, cloud = dumps_batch(batch)
    assert not cloud
    data, buffers = payload
    assert b"w" * 1000 not in data and b"r" * 1000 not in data
    assert [type(b) for b in buffers] == [bytearray, bytes]
    assert packet_size(payload) == len(data) + 2000
    assert load_results(run_pickled_batch(payload)) == [
        (b"w" * 1000, True),
        (b"r" * 1000, False),
    ]


def test_buffers_are_copied_when_the_batch_is_pickled():
    source = bytearray(b"a" * 64)
    payload, _ = dumps_batch(BatchedCalls([delayed(blob_info)(Blob(source))]))
    source[:] = b"b" * 64  # the caller changes its data after dispatching
    assert load_results(run_pickled_batch(payload)) == [(b"a" * 64, True)]


def test_the_main_module_check_does_not_read_buffers():
    # A buffer that happens to hold the bytes b"__main__" is no reason to
    # fall back to cloudpickle: only the pickle stream can refer to modules.
    batch = BatchedCalls([delayed(blob_info)(Blob(bytearray(b"__main__" * 8)))])
    payload, cloud = dumps_batch(batch)
    assert not cloud
    assert load_results(run_pickled_batch(payload)) == [(b"__main__" * 8, True)]


def test_results_with_buffers_come_back_as_packets():
    batch = BatchedCalls([delayed(identity)(Blob(bytearray(b"x" * 100)))])
    payload, _ = dumps_batch(batch)
    packet = run_pickled_batch(payload)
    assert type(packet) is tuple and packet_size(packet) >= 100
    (out,) = load_results(packet)
    assert bytes(out.data) == b"x" * 100


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_buffers_through_worker_processes(backend):
    blobs = [Blob(bytearray(bytes([i]) * 5000)) for i in range(6)]
    blobs.append(Blob(b"ro" * 10))
    out = Parallel(n_jobs=2, backend=backend)(delayed(blob_info)(b) for b in blobs)
    assert out[:6] == [(bytes([i]) * 5000, True) for i in range(6)]
    assert out[6] == (b"ro" * 10, False)


def test_numpy_arrays_arrive_as_they_left():
    np = pytest.importorskip("numpy")
    writable = np.arange(3000.0)
    readonly = np.arange(3000.0)
    readonly.flags.writeable = False
    fortran = np.asfortranarray(np.arange(600.0).reshape(20, 30))
    strided = np.arange(6000.0)[::2]  # not contiguous: pickled in band
    out = Parallel(n_jobs=2)(
        delayed(flags_of)(a) for a in (writable, readonly, fortran, strided)
    )
    assert out == [
        (writable.sum(), True, False),
        (readonly.sum(), False, False),
        (fortran.sum(), True, True),
        (strided.sum(), True, False),
    ]
    # Arrays returned by workers come back whole and writable.
    back = Parallel(n_jobs=2)(delayed(identity)(a) for a in (writable, fortran))
    assert np.array_equal(back[0], writable) and back[0].flags.writeable
    assert np.array_equal(back[1], fortran) and back[1].flags.f_contiguous


# -- reading the input --------------------------------------------------------


class _Recording(ThreadingBackend):
    sizes: list = []

    def submit(self, func, callback=None):
        _Recording.sizes.append(len(func))
        return super().submit(func, callback)


@pytest.fixture
def recording():
    register_parallel_backend("recording-test", _Recording)
    _Recording.sizes = []
    return _Recording.sizes


def test_the_input_s_last_run_is_shared_among_the_workers(recording):
    out = Parallel(n_jobs=2, backend="recording-test", batch_size=1000)(
        delayed(square)(i) for i in range(1500)
    )
    assert out == [i * i for i in range(1500)]
    # 1000, then the last 500 tasks as two batches rather than one.
    assert recording == [1000, 250, 250]


def test_finely_mixed_inputs_keep_full_batches(recording):
    tasks = [delayed(square if i % 2 else identity)(i) for i in range(400)]
    out = Parallel(n_jobs=2, backend="recording-test", batch_size=100)(iter(tasks))
    assert out == [i * i if i % 2 else i for i in range(400)]
    assert recording == [100] * 4


def test_a_long_run_ends_its_batch_where_the_function_changes(recording):
    tasks = [delayed(square)(i) for i in range(300)]
    tasks += [delayed(identity)(i) for i in range(300)]
    out = Parallel(n_jobs=2, backend="recording-test", batch_size=400)(iter(tasks))
    assert out == [i * i for i in range(300)] + list(range(300))
    assert recording == [300, 150, 150]


def _no_reduction(obj):
    return NotImplemented


def test_typed_reducer_builds_its_dispatch_table_once_per_base():
    import copyreg

    from para_core.backends._packets import TypedReducer

    reducer = TypedReducer(_no_reduction, (Blob,))
    first = reducer.table(copyreg.dispatch_table)
    assert reducer.table(copyreg.dispatch_table) is first
    assert Blob in first and set(copyreg.dispatch_table) <= set(first)
    # Another base table, another copy; a clone sent to workers starts empty.
    assert reducer.table({}) is not first
    clone = pickle.loads(pickle.dumps(reducer))
    assert clone.types == (Blob,) and clone._tables == {}
    # NotImplemented from the session: the object's own reduction.
    assert first[Blob](Blob(b"abc"))[0] is Blob


def test_typed_reducer_names_types_without_importing_their_module(monkeypatch):
    import copyreg
    import sys
    import types

    from para_core.backends._packets import TypedReducer

    name = "para_core_test_lazy_module"
    monkeypatch.delitem(sys.modules, name, raising=False)
    reducer = TypedReducer(_no_reduction, (f"{name}:Outer.Inner", Blob))
    clone = pickle.loads(pickle.dumps(reducer))  # imports nothing
    before = clone.table(copyreg.dispatch_table)
    assert name not in sys.modules and Blob in before
    # Once the module exists (something imported it), its type counts.
    module = types.ModuleType(name)

    class Outer:
        class Inner:
            pass

    module.Outer = Outer
    monkeypatch.setitem(sys.modules, name, module)
    after = clone.table(copyreg.dispatch_table)
    assert Outer.Inner in after and Outer.Inner not in before
    assert clone.table(copyreg.dispatch_table) is after


@pytest.mark.parametrize("batch_size", [1, 4, "auto"])
def test_sequential_reads_batch_size_tasks_before_running_them(batch_size):
    # n_jobs=1 runs in the caller: an int batch_size reads that many tasks
    # from the input, then runs them (joblib's order of the input's effects).
    events = []

    def produce():
        for i in range(6):
            events.append(f"read {i}")
            yield delayed(events.append)(f"ran {i}")

    Parallel(n_jobs=1, batch_size=batch_size)(produce())
    size = 4 if batch_size == 4 else 1
    expected = []
    for start in range(0, 6, size):
        chunk = range(start, min(start + size, 6))
        expected += [f"read {i}" for i in chunk] + [f"ran {i}" for i in chunk]
    assert events == expected
