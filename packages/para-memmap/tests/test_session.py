"""MemmapSession and ResultReducer through plain pickling, in one process."""

from __future__ import annotations

import errno
import os
import pickle
import tempfile

import numpy as np
import pytest
from _emulate import dumps

from para_memmap import _storage as storage
from para_memmap import empty, has_shareable_memory
from para_memmap._session import MemmapSession, ResultReducer


def send(session, obj):
    """Pickle ``obj`` the way para-core pickles a task batch; unpickle it."""
    return pickle.loads(dumps(obj, session.reduce_task_object))


def files(session):
    """Files of the session, and the process's kept copies, under its roots."""
    out = []
    prefix = f"{storage.PREFIX}{os.getpid()}-"
    for root in {session.folder.root, session.folder.fallback_root()}:
        for name in os.listdir(root):
            path = os.path.join(root, name)
            if name.startswith(prefix) and os.path.isdir(path):
                out += [os.path.join(path, n) for n in os.listdir(path)]
            elif name.startswith(prefix):
                out.append(path)  # a copy kept for later calls
    return sorted(out)


@pytest.fixture
def session(tmp_path):
    s = MemmapSession(max_nbytes=1000, mmap_mode="r", temp_folder=str(tmp_path))
    yield s
    s.close()


def test_large_arrays_anywhere_become_read_only_memmaps(session):
    a = np.arange(1000.0)
    small = np.arange(10.0)

    class Holder:
        def __init__(self, x):
            self.x = x

    got = send(session, {"nested": [(a, small)], "obj": Holder(a)})
    big, little = got["nested"][0]
    assert isinstance(big, np.memmap) and big.mode == "r"
    assert not big.flags.writeable
    np.testing.assert_array_equal(big, a)
    assert type(little) is np.ndarray and not has_shareable_memory(little)
    # One object, one file, even when reached twice in the same batch.
    assert len(files(session)) == 1 and session.stats.written == 1
    assert got["obj"].x.filename == big.filename


def test_threshold_is_inclusive_and_none_disables(tmp_path):
    with MemmapSession(max_nbytes=800, temp_folder=str(tmp_path)) as s:
        assert isinstance(send(s, np.zeros(100)), np.memmap)  # exactly 800 bytes
        assert type(send(s, np.zeros(99))) is np.ndarray
    with MemmapSession(max_nbytes=None, temp_folder=str(tmp_path)) as s:
        assert type(send(s, np.zeros(10**5))) is np.ndarray
        assert s.result_reducer is None
        assert files(s) == []


def test_object_arrays_and_empty_arrays_are_pickled_normally(session):
    objs = np.array([{"a": 1}] * 500, dtype=object)
    assert send(session, objs)[0] == {"a": 1}
    assert send(session, np.zeros((0, 1000))).shape == (0, 1000)
    assert files(session) == []


def test_same_array_in_many_batches_of_a_call_is_written_once(session):
    a = np.ones(5000)
    names = {send(session, (a, i))[0].filename for i in range(8)}
    assert len(names) == 1 and session.stats.written == 1


def test_later_calls_reuse_the_file_until_the_content_changes(session):
    a = np.random.default_rng(0).random(5000)
    first = send(session, a).filename
    session.end_call()
    assert send(session, a).filename == first
    assert session.stats.reused == 1 and session.stats.written == 1
    session.end_call()
    a[1234] += 1.0  # same object, new content: must be sent again
    second = send(session, a)
    assert second[1234] == a[1234]
    if session.stats.patched:  # write-protected: the page went into the file
        assert second.filename == first
    else:
        assert second.filename != first and not os.path.exists(first)
    session.end_call()
    a.shape = (50, 100)  # same bytes, new layout
    assert send(session, a).shape == (50, 100)
    assert session.stats.written + session.stats.patched == 3


def test_equal_copy_is_not_mistaken_for_the_original(session):
    a = np.ones(5000)
    send(session, a)
    session.end_call()
    b = a.copy()
    b[0] = 7.0
    assert send(session, b)[0] == 7.0
    assert session.stats.written == 2


def test_files_of_dead_arrays_go_at_end_of_call(session):
    a = np.ones(5000)
    name = send(session, a).filename
    del a
    assert os.path.exists(name)  # maybe still in flight
    session.end_call()
    assert not os.path.exists(name)


@pytest.mark.parametrize("mode", ["r+", "w+"])
def test_writable_modes_share_writes_but_never_reuse(tmp_path, mode):
    a = np.zeros(1000)
    with MemmapSession(max_nbytes=1000, mmap_mode=mode, temp_folder=str(tmp_path)) as s:
        got = send(s, a)
        assert got.mode == "r+" and got.flags.writeable
        got[:] = 5.0
        assert (send(s, a) == 5.0).all()  # same file within the call...
        assert (a == 0).all()  # ...but the caller's array is untouched
        s.end_call()
        assert (send(s, a) == 0).all()  # a later call gets a fresh copy
        assert s.stats.written == 2


def test_copy_on_write_mode_gives_private_writable_arrays(session, tmp_path):
    with MemmapSession(max_nbytes=1000, mmap_mode="c", temp_folder=str(tmp_path)) as s:
        a = np.zeros(1000)
        got = send(s, a)
        got[:] = 3.0
        assert (send(s, a) == 0).all()


def test_caller_memmaps_and_shared_arrays_go_by_reference(session, tmp_path):
    m = np.memmap(tmp_path / "user.dat", dtype="f8", mode="w+", shape=(3000,))
    got = send(session, m[10:20])
    assert got.filename == str(m.filename) and got.mode == "r+"
    got[:] = 9.0
    assert (m[10:20] == 9.0).all()
    small = np.memmap(tmp_path / "small.dat", dtype="u1", mode="w+", shape=(4,))
    assert send(session, small).filename == str(small.filename)  # any size
    e = empty(100)
    e[:] = 2.0
    assert send(session, e[::2]).sum() == 100.0
    assert session.stats.by_reference == 3 and files(session) == []
    del m, small, e


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match=r"mmap_mode.*'x'"):
        MemmapSession(mmap_mode="x")
    with pytest.raises(ValueError, match="-1"):
        MemmapSession(max_nbytes=-1)
    with pytest.raises(ValueError, match="'1X'"):
        MemmapSession(max_nbytes="1X")
    with pytest.raises(ValueError, match=r"\[1\]"):
        MemmapSession(max_nbytes=[1])
    assert MemmapSession(max_nbytes="1M").max_nbytes == 2**20
    assert MemmapSession(max_nbytes="100k").max_nbytes == 100 * 1024
    assert MemmapSession(max_nbytes=1e6).max_nbytes == 1_000_000


def test_close_removes_everything_and_refuses_new_work(tmp_path):
    s = MemmapSession(max_nbytes=10, temp_folder=str(tmp_path))
    send(s, np.ones(100))
    assert s.result_reducer is not None
    folder = s.folder.path
    assert os.path.isdir(folder)
    s.close()
    s.close()
    assert not os.path.exists(folder)
    with pytest.raises(RuntimeError, match="closed"):
        send(s, np.ones(100))


def test_results_come_back_through_a_file_that_is_then_unlinked(session):
    reducer = pickle.loads(pickle.dumps(session.result_reducer))
    a = np.arange(2000.0).reshape(40, 50)[:, ::2]
    got = pickle.loads(dumps([a, np.ones(3)], reducer))
    np.testing.assert_array_equal(got[0], a)
    assert type(got[0]) is np.ndarray and got[0].flags.writeable
    assert not has_shareable_memory(got[0])
    assert files(session) == []


def test_result_views_of_user_memmaps_go_by_reference(session, tmp_path):
    m = np.memmap(tmp_path / "out.dat", dtype="f8", mode="w+", shape=(2000,))
    got = pickle.loads(dumps(m[100:], session.result_reducer))
    assert got.filename == str(m.filename)
    # ...but a view of a transported argument is copied (its file is temporary).
    arg = send(session, np.ones(2000))
    back = pickle.loads(dumps(arg[1:], session.result_reducer))
    assert not has_shareable_memory(back) and back.sum() == 1999
    del m, got


def test_results_use_the_pipe_when_shm_has_no_room(tmp_path, monkeypatch):
    reducer = ResultReducer(str(tmp_path), 1000, check_room=True)
    monkeypatch.setattr("para_memmap._results.free_bytes", lambda path: 10)
    assert reducer(np.ones(1000)) is NotImplemented
    assert os.listdir(tmp_path) == []


def test_temp_folder_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("JOBLIB_TEMP_FOLDER", str(tmp_path / "env"))
    assert storage.resolve_root(None) == (str(tmp_path / "env"), False)
    assert storage.resolve_root(str(tmp_path)) == (str(tmp_path), False)
    monkeypatch.delenv("JOBLIB_TEMP_FOLDER")
    root, auto = storage.resolve_root(None)
    if os.access("/dev/shm", os.W_OK):
        assert (root, auto) == ("/dev/shm", True)
    monkeypatch.setattr(storage, "SHM_FOLDER", str(tmp_path / "missing"))
    assert storage.resolve_root(None) == (os.path.abspath(tempfile.gettempdir()), False)
    with pytest.raises(TypeError, match="temp_folder"):
        storage.resolve_root(3)


def test_small_shm_falls_back_to_temp_dir_with_a_warning(monkeypatch):
    monkeypatch.delenv("JOBLIB_TEMP_FOLDER", raising=False)
    monkeypatch.setattr(storage, "free_bytes", lambda path: 4096)
    s = MemmapSession(max_nbytes=1000)
    try:
        if not s.folder.auto_shm:
            pytest.skip("no writable /dev/shm on this machine")
        with pytest.warns(UserWarning, match="falls back"):
            got = send(s, np.ones(10_000))
        assert got.filename.startswith(os.path.abspath(tempfile.gettempdir()))
        assert got.sum() == 10_000
    finally:
        s.close()


def test_running_out_of_space_while_writing_falls_back(monkeypatch):
    monkeypatch.delenv("JOBLIB_TEMP_FOLDER", raising=False)
    real = storage.write_array

    def full_shm(filename, chunks, nbytes, checksum=True):
        if filename.startswith("/dev/shm"):
            open(filename, "wb").close()
            os.unlink(filename)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(filename, chunks, nbytes, checksum)

    monkeypatch.setattr(storage, "write_array", full_shm)
    s = MemmapSession(max_nbytes=1000)
    try:
        if not s.folder.auto_shm:
            pytest.skip("no writable /dev/shm on this machine")
        with pytest.warns(UserWarning, match="ran out of space"):
            got = send(s, np.arange(1000.0))
        assert got[-1] == 999.0 and not got.filename.startswith("/dev/shm")
    finally:
        s.close()


def test_explicit_folder_errors_are_not_hidden(tmp_path):
    target = tmp_path / "file-not-dir"
    target.write_text("x")
    with MemmapSession(max_nbytes=10, temp_folder=str(target)) as s:
        with pytest.raises(OSError, match="temp_folder"):
            send(s, np.ones(100))


def test_checksum_without_xxhash_uses_crc32(session, monkeypatch):
    import sys

    from para_memmap import _watch
    from para_memmap._arrays import checksum

    monkeypatch.setitem(sys.modules, "xxhash", None)  # import fails
    monkeypatch.setattr(_watch, "arm", lambda lo, hi: False)  # checksum, then
    assert type(storage.new_hasher()).__name__ == "_Crc32"
    a = np.arange(5000.0)
    before = checksum(a)
    send(session, a)
    session.end_call()
    assert send(session, a).filename and session.stats.reused == 1
    a[0] = -1.0
    assert checksum(a) != before
    session.end_call()
    assert send(session, a)[0] == -1.0 and session.stats.written == 2
