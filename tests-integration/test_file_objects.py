"""dump/load with file objects and streams, para next to joblib.

Every readable binary file object works for load, seekable or not: BytesIO,
open files, gzip/bz2/lzma file objects, socket and pipe files. joblib's
warnings for ``mmap_mode`` with file objects are reproduced, and so is its
reading of a BytesIO right after a dump into it (joblib goes back to the
start of a stream it cannot peek into). The examples of the user guide's
persistence page run as tests.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import socket
import threading
import warnings

import joblib
import numpy as np
import pytest

import para_joblib

LIBS = {"para": para_joblib, "joblib": joblib}


def _value():
    return {
        "small": np.arange(5, dtype="i2"),
        "big": np.linspace(0, 1, 40_000).reshape(200, 200),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "objects": np.array([None, "a", {"k": 1}], dtype=object),
        "text": "C'est l'été",
        "list": [1, 2.5, b"bytes"],
    }


def _check(got, expected=None):
    expected = _value() if expected is None else expected
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        if isinstance(want, np.ndarray):
            assert type(got[key]) is np.ndarray, key
            assert got[key].dtype == want.dtype, key
            assert got[key].flags.f_contiguous == want.flags.f_contiguous, key
            if want.dtype.hasobject:
                assert got[key].tolist() == want.tolist()
            else:
                np.testing.assert_array_equal(got[key], want)
        else:
            assert got[key] == want, key


@pytest.mark.parametrize("writer", LIBS)
@pytest.mark.parametrize("reader", LIBS)
@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("bz2", 1), ("lzma", 1)])
def test_bytesio_both_ways(writer, reader, compress):
    buf = io.BytesIO()
    assert LIBS[writer].dump(_value(), buf, compress=compress) is None
    buf.seek(0)
    _check(LIBS[reader].load(buf))


@pytest.mark.parametrize("lib", LIBS)
def test_bytesio_load_right_after_dump_without_seek(lib):
    # joblib reads such a stream from its start: it detects the compressor
    # by reading the first bytes, then seeks back to 0.
    buf = io.BytesIO()
    LIBS[lib].dump(_value(), buf)
    _check(LIBS[lib].load(buf))


@pytest.mark.parametrize("compress", [3, ("xz", 1), ("zstd", 3)])
def test_compressed_bytesio_right_after_dump_without_seek(compress):
    # joblib detects the compressor on the empty read at the end, then reads
    # compressed bytes as a pickle and fails; para starts over from 0 first.
    buf = io.BytesIO()
    para_joblib.dump(_value(), buf, compress=compress)
    _check(para_joblib.load(buf))


def test_bytesio_read_from_current_position_when_not_at_end():
    # para goes back to where the stream was (not to 0) when it is not at the
    # end: a dump that follows a header in the same stream loads.
    buf = io.BytesIO()
    buf.write(b"header!")
    para_joblib.dump([1, 2, 3], buf)
    buf.seek(len(b"header!"))
    assert para_joblib.load(buf) == [1, 2, 3]


@pytest.mark.parametrize("writer", LIBS)
@pytest.mark.parametrize("reader", LIBS)
def test_open_files(tmp_path, writer, reader):
    path = tmp_path / "data.pkl"
    with open(path, "wb") as f:
        LIBS[writer].dump(_value(), f)
    with open(path, "rb") as f:
        _check(LIBS[reader].load(f))
    with open(path, "rb", buffering=0) as f:  # raw FileIO: no peek
        _check(LIBS[reader].load(f))


OPENERS = {"gzip": gzip.GzipFile, "bz2": bz2.BZ2File, "lzma": lzma.LZMAFile}


@pytest.mark.parametrize("kind", OPENERS)
@pytest.mark.parametrize("writer", LIBS)
@pytest.mark.parametrize("reader", LIBS)
def test_compressed_file_objects(tmp_path, kind, writer, reader):
    # The user guide's example: dump into gzip.GzipFile(...), load it back.
    path = tmp_path / f"data.pkl.{kind}"
    with OPENERS[kind](path, "wb") as fo:
        LIBS[writer].dump(_value(), fo)
    with OPENERS[kind](path, "rb") as fo:
        _check(LIBS[reader].load(fo))


def _serve(dump_into, sock_or_fd):
    errors = []

    def run():
        try:
            dump_into(sock_or_fd)
        except BaseException as exc:  # reported by the reader's assertion
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t, errors


@pytest.mark.parametrize("compress", [0, 3])
def test_socket_files(compress):
    left, right = socket.socketpair()
    with left, right:

        def dump_into(sock):
            with sock.makefile("wb") as w:
                para_joblib.dump(_value(), w, compress=compress)
            sock.shutdown(socket.SHUT_WR)

        t, errors = _serve(dump_into, left)
        with right.makefile("rb") as r:
            _check(para_joblib.load(r))
        t.join()
        assert not errors


@pytest.mark.parametrize("compress", [0, ("bz2", 1)])
@pytest.mark.parametrize("buffered", [True, False])
def test_pipe_files(compress, buffered):
    rfd, wfd = os.pipe()

    def dump_into(fd):
        with os.fdopen(fd, "wb") as w:
            para_joblib.dump(_value(), w, compress=compress)

    t, errors = _serve(dump_into, wfd)
    with os.fdopen(rfd, "rb", buffering=-1 if buffered else 0) as r:
        _check(para_joblib.load(r))
    t.join()
    assert not errors


class _ReadOnly:
    """A file object with read() only: no peek, seek, tell nor fileno."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)

    def read(self, n=-1):
        return self._f.read(n)


@pytest.mark.parametrize("compress", [0, 3])
def test_read_only_stream(compress):
    buf = io.BytesIO()
    joblib.dump(_value(), buf, compress=compress)
    _check(para_joblib.load(_ReadOnly(buf.getvalue())))


def _warning_text(lib, fileobj, mmap_mode="r"):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        got = LIBS[lib].load(fileobj, mmap_mode=mmap_mode)
    _check(got)
    return [(w.category, str(w.message)) for w in seen]


@pytest.mark.parametrize("lib", LIBS)
def test_mmap_mode_with_bytesio_warns_like_joblib(lib):
    buf = io.BytesIO()
    LIBS[lib].dump(_value(), buf)
    buf.seek(0)
    assert _warning_text(lib, buf) == [
        (
            UserWarning,
            'In memory persistence is not compatible with mmap_mode "r" flag '
            "passed. mmap_mode option will be ignored.",
        )
    ]


@pytest.mark.parametrize("lib", LIBS)
def test_mmap_mode_with_compressed_file_object_warns_like_joblib(lib, tmp_path):
    path = tmp_path / "c.pkl"
    LIBS[lib].dump(_value(), path, compress=3)
    with open(path, "rb") as f:
        assert _warning_text(lib, f) == [
            (
                UserWarning,
                f'mmap_mode "r" is not compatible with compressed file {path}. '
                '"r" flag will be ignored.',
            )
        ]


@pytest.mark.parametrize("lib", LIBS)
def test_mmap_mode_with_non_raw_file_object_warns_like_joblib(lib, tmp_path):
    path = tmp_path / "g.pkl.gz"
    with gzip.GzipFile(path, "wb") as fo:
        LIBS[lib].dump(_value(), fo)
    with gzip.GzipFile(path, "rb") as fo:
        assert _warning_text(lib, fo) == [
            (
                UserWarning,
                f'"{fo!r}" is not a raw file, mmap_mode "r" flag will be ignored.',
            )
        ]


@pytest.mark.parametrize("lib", LIBS)
def test_mmap_mode_with_open_file_loads_in_memory_silently(lib, tmp_path):
    path = tmp_path / "p.pkl"
    LIBS[lib].dump(_value(), path)
    with open(path, "rb") as f:
        assert _warning_text(lib, f) == []


def test_user_guide_examples(tmp_path):
    # The persistence page of joblib's user guide, through para.
    filename = str(tmp_path / "test.pkl")
    to_persist = [("a", [1, 2, 3]), ("b", np.arange(10))]
    assert para_joblib.dump(to_persist, filename) == [filename]
    loaded = para_joblib.load(filename)
    assert loaded[0] == ("a", [1, 2, 3])
    np.testing.assert_array_equal(loaded[1][1], np.arange(10))

    with open(filename, "wb") as fo:
        para_joblib.dump(to_persist, fo)
    with open(filename, "rb") as fo:
        assert para_joblib.load(fo)[0] == ("a", [1, 2, 3])

    assert para_joblib.dump(to_persist, filename + ".compressed", compress=True) == [
        filename + ".compressed"
    ]
    assert para_joblib.load(filename + ".compressed")[0] == ("a", [1, 2, 3])
    for compress, ext in [(("zlib", 3), ".z"), (("gzip", 3), ".gz"), ("bz2", ".bz2")]:
        assert para_joblib.dump(to_persist, filename + ext, compress=compress) == [
            filename + ext
        ]
        assert para_joblib.load(filename + ext)[0] == ("a", [1, 2, 3])
    for ext in (".z", ".gz", ".bz2", ".xz", ".lzma"):
        para_joblib.dump(to_persist, filename + ext)
        assert joblib.load(filename + ext)[0] == ("a", [1, 2, 3])

    with gzip.GzipFile(filename + ".gz", "wb") as fo:
        para_joblib.dump(to_persist, fo)
    with gzip.GzipFile(filename + ".gz", "rb") as fo:
        assert para_joblib.load(fo)[0] == ("a", [1, 2, 3])
    with bz2.BZ2File(filename + ".bz2", "wb") as fo:
        para_joblib.dump(to_persist, fo)
    with bz2.BZ2File(filename + ".bz2", "rb") as fo:
        assert para_joblib.load(fo)[0] == ("a", [1, 2, 3])
