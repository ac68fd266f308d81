"""On-disk layout, store registration, custom stores, logger helpers."""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import sys
import warnings

import pytest

import para_cache
import para_persist
from para_cache import (
    FileSystemStoreBackend,
    Logger,
    Memory,
    PrintTime,
    StoreBackendBase,
    format_time,
    pformat,
    register_store_backend,
    short_format_time,
)


def double(x):
    return 2 * x


def test_layout(tmp_path):
    mem = Memory(str(tmp_path), verbose=0)
    f = mem.cache(double)
    f(21)
    root = tmp_path / "joblib"
    assert (tmp_path / ".gitignore").read_text() == (
        "# Created by joblib automatically.\n*\n"
    )
    func_dir = root.joinpath(*__name__.split("."), "double")
    assert func_dir.is_dir()
    code = (func_dir / "func_code.py").read_text()
    assert code.startswith("# first line: ")
    assert "def double(x):" in code
    [entry] = [p for p in func_dir.iterdir() if p.is_dir()]
    assert len(entry.name) == 32
    assert sorted(p.name for p in entry.iterdir()) == ["metadata.json", "output.pkl"]
    meta = json.loads((entry / "metadata.json").read_text())
    assert meta["input_args"] == {"x": "21"}
    assert meta["duration"] >= 0
    assert abs(meta["time"] - os.path.getmtime(entry / "metadata.json")) < 60
    # joblib 1.6 keeps a pathlib location as is (no "joblib" sub-folder).
    mem2 = Memory(tmp_path / "p", verbose=0)
    mem2.cache(double)(1)
    assert (tmp_path / "p" / ".gitignore").exists()
    assert not (tmp_path / "p" / "joblib").exists()


def test_nested_and_main_function_ids(tmp_path):
    from para_cache._memorized import _build_func_identifier

    def outer():
        def inner():
            return 1

        return inner

    ident = _build_func_identifier(outer())
    assert ident.endswith(os.path.join("outer", "<locals>", "inner"))
    ns = {"__name__": "__main__"}
    exec("def main_func():\n    return 1\n", ns)
    assert _build_func_identifier(ns["main_func"]).startswith("__main__")


def test_repr_and_pickling(tmp_path):
    mem = Memory(str(tmp_path), verbose=0)
    f = mem.cache(double)
    assert repr(mem) == f"Memory(location={tmp_path / 'joblib'})"
    assert repr(f).startswith("MemorizedFunc(func=<function double")
    f2 = pickle.loads(pickle.dumps(f))
    assert f2(4) == 8
    assert f.check_call_in_cache(4)


def test_register_store_backend_errors():
    with pytest.raises(ValueError, match="should be a string"):
        register_store_backend(1, FileSystemStoreBackend)
    with pytest.raises(ValueError, match="should inherit StoreBackendBase"):
        register_store_backend("x", dict)
    with pytest.raises(TypeError, match=r"Unknown location .* or backend nope"):
        Memory("somewhere", backend="nope")


def test_non_path_location_warns():
    with pytest.warns(UserWarning, match="Returning None instead"):
        mem = Memory(location=42)
    assert mem.store_backend is None


def test_abstract_base_needs_all_methods():
    class Half(StoreBackendBase):
        def _open_item(self, f, mode):
            return open(f, mode)

    with pytest.raises(TypeError):
        Half()


def test_custom_store_backend(tmp_path):
    events = []

    class Recording(FileSystemStoreBackend):
        def _move_item(self, src, dst):
            events.append(os.path.basename(dst))
            os.replace(src, dst)

        def configure(self, location, verbose=0, backend_options=None):
            options = dict(backend_options or {})
            options["fsync"] = False
            super().configure(location, verbose, options)

    register_store_backend("recording", Recording)
    try:
        mem = Memory(str(tmp_path), backend="recording", verbose=0)
        f = mem.cache(double)
        assert f(3) == 6
        assert f(3) == 6
        assert isinstance(mem.store_backend, Recording)
        # A new entry is published whole: one move of its folder (func_code.py
        # is written too unless this process checked `double` already).
        args_id = f._get_args_id(3)
        assert [e for e in events if e != "func_code.py"] == [args_id]
        entry = tmp_path / "joblib" / f.func_id / args_id
        assert sorted(p.name for p in entry.iterdir()) == [
            "metadata.json",
            "output.pkl",
        ]
        # Recomputing an existing entry: the folder move is refused (the
        # entry exists), then its files are replaced, metadata first, and no
        # temporary folder is left behind.
        events.clear()
        assert f.call(3)[0] == 6
        assert events == [args_id, "metadata.json", "output.pkl"]
        assert {p.name for p in entry.parent.iterdir()} - {"func_code.py"} == {args_id}
    finally:
        para_cache._store._STORE_BACKENDS.pop("recording")


def test_store_limits_with_strings(tmp_path):
    from para_cache._limits import memstr_to_bytes

    assert memstr_to_bytes("1K") == 1024
    assert memstr_to_bytes("2M") == 2 * 1024**2
    assert memstr_to_bytes("1.5G") == int(1.5 * 1024**3)
    with pytest.raises(ValueError, match="Invalid literal for size"):
        memstr_to_bytes("12Q")


def test_clear_keeps_root_and_gitignore(tmp_path):
    mem = Memory(str(tmp_path), verbose=0)
    mem.cache(double)(1)
    mem.clear(warn=False)
    assert (tmp_path / "joblib").is_dir()
    assert list((tmp_path / "joblib").iterdir()) == []
    assert (tmp_path / ".gitignore").exists()
    f = mem.cache(double)
    f(1)
    assert f.check_call_in_cache(1)


def test_fsspec_storage_options_and_missing_fsspec(monkeypatch, tmp_path):
    pytest.importorskip("fsspec")
    mem = Memory(
        "memory://opts-test/x",
        backend="fsspec",
        verbose=0,
        backend_options={"storage_options": {}},
    )
    assert mem.cache(double)(5) == 10
    mem.store_backend.fs.rm("/opts-test", recursive=True)
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(ImportError, match=r"para-cache\[fsspec\]"):
        Memory("memory://y", backend="fsspec")


def test_logger_helpers(capsys, tmp_path):
    assert format_time(90) == "90.0s, 1.5min"
    assert short_format_time(42) == "  42.0s"
    assert short_format_time(120) == " 2.0min"
    assert pformat({"a": 1}) == "{'a': 1}"
    assert Logger().format([1, 2]) == "[1, 2]"
    timer = PrintTime(logdir=str(tmp_path))
    timer("step")
    timer("all", total=True)
    err = capsys.readouterr().err
    assert err.startswith("step: ")
    assert "all: " in err
    log = (tmp_path / "joblib.log").read_text()
    assert "Logging joblib python script" in log
    assert "step: " in log
    PrintTime(logfile=str(tmp_path / "joblib.log"))
    assert (tmp_path / "joblib.log.1").exists()
    with pytest.raises(ValueError, match="Cannot specify both logfile and logdir"):
        PrintTime(logfile="a", logdir="b")


def test_public_names():
    for name in para_cache.__all__:
        assert hasattr(para_cache, name), name
    assert para_cache.__version__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Memory(None)


def test_no_numpy_import_at_package_import(tmp_path):
    import subprocess

    code = (
        "import sys, para_cache;"
        f"m = para_cache.Memory({str(tmp_path)!r}, verbose=0);"
        "f = m.cache(abs); f(-1); f(-1); para_cache.hash({'a': [1]});"
        "print([n for n in ('numpy', 'fsspec') if n in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert sorted(os.listdir(tmp_path)) == [".gitignore", "joblib"]


def test_pathlike_location(tmp_path):
    mem = Memory(pathlib.Path(tmp_path), verbose=0)
    assert mem.cache(double)(2) == 4


@pytest.mark.parametrize("fsync", [None, False, True])
def test_fsync_option(tmp_path, monkeypatch, fsync):
    synced = []
    real_fsync = os.fsync

    def counting_fsync(fd):
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    options = {} if fsync is None else {"fsync": fsync}
    mem = Memory(str(tmp_path), verbose=0, backend_options=options)
    f = mem.cache(double)
    assert f(5) == 10
    # Off by default: output.pkl and metadata.json are fsynced only on request.
    assert len(synced) == (2 if fsync else 0)
    entry = tmp_path / "joblib" / f.func_id / f._get_args_id(5)
    assert json.loads((entry / "metadata.json").read_text())["input_args"] == {"x": "5"}
    assert f(5) == 10
    assert len(synced) == (2 if fsync else 0)  # a hit writes nothing


def test_torn_metadata_counts_as_expired(tmp_path):
    from para_cache import expires_after

    assert expires_after(hours=1)({}) is False
    calls = []

    def f(x):
        calls.append(x)
        return x

    mem = Memory(str(tmp_path), verbose=0)
    g = mem.cache(f, cache_validation_callback=expires_after(hours=1))
    assert g(1) == 1
    assert g(1) == 1
    assert calls == [1]
    entry = tmp_path / "joblib" / g.func_id / g._get_args_id(1)
    (entry / "metadata.json").write_bytes(b"")  # as a power loss may leave it
    assert g(1) == 1
    assert calls == [1, 1]
    assert json.loads((entry / "metadata.json").read_text())["input_args"]


@pytest.mark.parametrize("compress", [False, 3, ("bz2", 1)])
def test_outputs_small_and_big_round_trip(tmp_path, compress):
    # Outputs are written through a bare descriptor: small pieces gathered,
    # big ones (here a 2 MB array block) written directly.
    np = pytest.importorskip("numpy")
    mem = Memory(tmp_path, verbose=0, compress=compress)
    make = mem.cache(lambda n: {"small": list(range(n)), "big": np.arange(n * 1.0)})
    first = make(250_000)
    again = make(250_000)
    assert again["small"] == first["small"] == list(range(250_000))
    assert np.array_equal(again["big"], first["big"])
    (entry,) = list(tmp_path.rglob("output.pkl"))
    assert para_persist.load(str(entry))["big"].nbytes == 2_000_000


def test_fd_file_gathers_small_writes_and_passes_big_ones(tmp_path):
    from para_cache._files import _WBUF, FdFile

    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        out = FdFile(fd)
        out.write(b"head")
        assert os.fstat(fd).st_size == 0  # gathered
        out.write(memoryview(b"x" * _WBUF))  # big: pending bytes go first
        out.write(bytearray(b"tail"))
        assert out.tell() == 8 + _WBUF
        out.close()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"head" + b"x" * _WBUF + b"tail"


def test_temp_names_are_unique_and_new_in_a_forked_child(tmp_path):
    from para_cache._files import temp_name

    names = {temp_name("/x/entry") for _ in range(1000)}
    assert len(names) == 1000
    assert all(n.startswith("/x/entry.") and n.endswith(".tmp") for n in names)
    if not hasattr(os, "fork"):
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, temp_name("/x/entry").encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    # Same counter value possible, never the same 64-bit random prefix.
    prefix = temp_name("/x/entry").rsplit("-", 1)[0]
    assert not child.startswith(prefix + "-")


@pytest.mark.parametrize(
    "metadata",
    [
        {"duration": 0.25, "input_args": {"x": "5", "s": "'é\\n\"'"}, "time": 17e8},
        {"duration": 1.5e-06, "input_args": {}, "time": 1763950000.123},
        {"duration": float("nan"), "input_args": {"x": "1"}, "time": 1.0},
        {"duration": 1, "input_args": {"x": 1}, "time": 2.0},
        {"time": 2.0, "duration": 1.0, "input_args": {}},
        {"anything": [1, 2], "else": None},
    ],
)
def test_metadata_bytes_are_json_dumps_bytes(metadata):
    from para_cache._files import encode_metadata

    assert encode_metadata(metadata) == json.dumps(metadata).encode("utf-8")


def _triple(x):
    return 3 * x


def test_store_subclass_overriding_joblibs_writers_sees_them_called(tmp_path):
    # joblib's Memory writes an entry with dump_item, then store_metadata;
    # a client store overriding them (joblib's signatures) must be called so.
    from para_cache import FileSystemStoreBackend, Memory, register_store_backend

    calls = []

    class Recording(FileSystemStoreBackend):
        def dump_item(self, call_id, item, verbose=1):
            calls.append(("dump_item", item))
            super().dump_item(call_id, item, verbose)

        def store_metadata(self, call_id, metadata):
            calls.append(("store_metadata", sorted(metadata)))
            super().store_metadata(call_id, metadata)

    register_store_backend("recording-writers", Recording)
    memory = Memory(str(tmp_path), backend="recording-writers", verbose=0)
    assert memory.cache(_triple)(2) == 6
    assert memory.cache(_triple)(2) == 6
    assert [name for name, _ in calls] == ["dump_item", "store_metadata"]
    assert calls[0][1] == 6
    assert "duration" in calls[1][1]
