"""A toy transport: Marker objects travel through files instead of pickles."""

from __future__ import annotations

import os
import pickle
import uuid

from para_core import TransportHook, TransportSession


class Marker:
    def __init__(self, value, via_transport=False):
        self.value = value
        self.via_transport = via_transport


def load_marker(path):
    with open(path, "rb") as fh:
        return Marker(pickle.load(fh), via_transport=True)


def _write(folder, value):
    path = os.path.join(folder, f"marker-{uuid.uuid4().hex}.pkl")
    with open(path, "wb") as fh:
        pickle.dump(value, fh)
    return path


class ResultReducer:
    """Picklable; runs in the workers."""

    def __init__(self, folder):
        self.folder = folder

    def __call__(self, obj):
        if type(obj) is Marker:
            return load_marker, (_write(self.folder, obj.value),)
        return NotImplemented


class ToySession(TransportSession):
    def __init__(self, hook, request):
        self.hook = hook
        self.folder = request.temp_folder
        self.result_reducer = ResultReducer(self.folder)

    def reduce_task_object(self, obj):
        self.hook.seen += 1
        if type(obj) is Marker:
            self.hook.events.append("reduce")
            return load_marker, (_write(self.folder, obj.value),)
        return NotImplemented

    def end_call(self):
        self.hook.events.append("end_call")

    def close(self):
        self.hook.events.append("close")
        for name in os.listdir(self.folder):
            if name.startswith("marker-"):
                os.remove(os.path.join(self.folder, name))


class TypedToySession(ToySession):
    """The same session, naming the one type its reducers act on."""

    reduce_types = (Marker,)


class ToyHook(TransportHook):
    def __init__(self, typed=False):
        self.events = []
        self.requests = []
        self.seen = 0  # objects shown to reduce_task_object
        self.session_class = TypedToySession if typed else ToySession

    def open(self, request):
        self.events.append("open")
        self.requests.append(request)
        return self.session_class(self, request)


def echo_marker(m, *others):
    """Worker side: check the marker came by file, send a new one back."""
    return Marker((m.value, m.via_transport))
