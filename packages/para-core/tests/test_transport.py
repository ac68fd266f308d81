"""The transport hook: both directions and the session life cycle."""

from __future__ import annotations

import os

import pytest
from _helpers import fail_on, square
from _toy_transport import Marker, ToyHook, echo_marker

from para_core import (
    Parallel,
    TransportHook,
    TransportRequest,
    delayed,
    get_transport_hook,
    set_transport_hook,
)

pytestmark = pytest.mark.usefixtures("no_leftovers")


@pytest.fixture
def hook():
    toy = ToyHook()
    previous = set_transport_hook(toy)
    yield toy
    set_transport_hook(previous)


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_markers_travel_by_transport_both_ways(hook, tmp_path, backend):
    out = Parallel(
        n_jobs=2, backend=backend, temp_folder=str(tmp_path), max_nbytes="2K"
    )(delayed(echo_marker)(Marker(i)) for i in range(4))
    # worker saw the marker rebuilt from a file; caller got one back the same way
    assert [m.value for m in out] == [(i, True) for i in range(4)]
    assert all(m.via_transport for m in out)
    assert hook.events.count("reduce") == 4
    assert hook.events[0] == "open" and hook.events[-2:] == ["end_call", "close"]
    assert hook.requests == [
        TransportRequest(
            backend=backend,
            n_jobs=2,
            temp_folder=str(tmp_path),
            max_nbytes=2048,
            mmap_mode="r",
        )
    ]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_reduce_types_limit_the_reducers_to_those_types(tmp_path, backend):
    typed, untyped = ToyHook(typed=True), ToyHook()
    outs = []
    for toy in (typed, untyped):
        previous = set_transport_hook(toy)
        try:
            outs.append(
                Parallel(n_jobs=2, backend=backend, temp_folder=str(tmp_path))(
                    delayed(echo_marker)(Marker(i), [i, "x", (i,)]) for i in range(4)
                )
            )
        finally:
            set_transport_hook(previous)
    for out in outs:  # both directions still go through the transport
        assert [m.value for m in out] == [(i, True) for i in range(4)]
        assert all(m.via_transport for m in out)
    assert typed.seen == 4  # the markers and nothing else
    assert untyped.seen >= 4 * 3  # at least the markers, lists and tuples
    assert os.listdir(tmp_path) == []


def test_session_spans_a_with_block(hook, tmp_path):
    with Parallel(n_jobs=2, temp_folder=str(tmp_path)) as par:
        par(delayed(square)(i) for i in range(3))
        par(delayed(square)(i) for i in range(3))
        assert hook.events == ["open", "end_call", "end_call"]
    assert hook.events == ["open", "end_call", "end_call", "close"]


def test_session_closed_on_error(hook, tmp_path):
    with pytest.raises(ValueError):
        Parallel(n_jobs=2, temp_folder=str(tmp_path))(
            delayed(fail_on)(i, 2) for i in range(5)
        )
    assert hook.events == ["open", "end_call", "close"]


def test_threads_and_sequential_never_use_the_hook(hook):
    Parallel(n_jobs=2, backend="threading")(delayed(square)(i) for i in range(3))
    Parallel(n_jobs=1)(delayed(square)(i) for i in range(3))
    assert hook.events == []


def test_set_and_get_hook():
    assert get_transport_hook() is None
    base = TransportHook()
    assert set_transport_hook(base) is None
    assert get_transport_hook() is base
    # a hook returning no session transports nothing
    assert Parallel(n_jobs=2)(delayed(square)(i) for i in range(3)) == [0, 1, 4]
    assert set_transport_hook(None) is base
    with pytest.raises(TypeError, match="TransportHook instance"):
        set_transport_hook(object())
