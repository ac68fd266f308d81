"""Streams: pipes between the caller's thread and loky's workers.

loky carries each submitted call through two threads of the caller (its
manager thread, then its call queue's feeder thread) and each result back
through the manager thread. Those threads need the GIL, which the caller
holds while it reads its input, and on a busy machine each hand-over waits
for a thread to be scheduled: a round trip costs a millisecond, and a call
of many small tasks pays it for every batch. A stream is one worker's pair
of pipes, written and read by the caller's own thread::

    caller thread                                   loky worker
      Streams(executor, n): per worker two FIFOs,
        executor.submit(serve, to, back)  -------->  serve(): opens both,
                                                     unlinks them
      submit(): [len|kind][(payload, reducer)] ->    run_pickled_batch()
      pump():   select() on the back pipes  <-----   [len|kind][packet]
      close():  closes the pipes  ----- EOF ----->   serve() returns

Each stream runs its batches in order; a batch goes to the stream with the
fewest batches in flight. A task's exception comes back as a frame and is
raised in the caller with the worker's traceback as its ``__cause__``. A
worker that dies ends its stream: the caller takes the failure from the
stream's loky future (loky's TerminatedWorkerError, with the exit code).

Linux only (FIFOs opened read-write by the caller, pipe sizes); elsewhere,
or with ``PARA_CORE_STREAMS=0``, the loky backend submits through loky's
futures.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import pickle
import select
import shutil
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ._mp import resource_tracker

__all__ = ["Streams", "serve", "settle_open_streams", "streams_supported"]

_HEADER = struct.Struct("!QB")  # frame length, frame kind
_BATCH, _BYTES, _PACKET, _ERROR, _BYE = range(5)
# A worker leaves its stream after this long without a batch (see Streams).
_IDLE_EXIT = 0.02
# Room for a big batch's results while the caller reads its input.
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
# How often a caller waiting on its streams checks their loky futures.
_CHECK_EVERY = 0.05


def streams_supported() -> bool:
    """Whether loky calls use streams here (Linux, not disabled)."""
    return sys.platform.startswith("linux") and os.environ.get(
        "PARA_CORE_STREAMS", "1"
    ) not in ("", "0")


# -- worker side ------------------------------------------------------------


def serve(to_path: str, back_path: str) -> None:
    """Run the batches read from ``to_path``; write results to ``back_path``.

    Returns when the caller closes its end (or is gone).
    """
    from ._pickling import run_pickled_batch

    # Never wait for the caller: it opened both pipes before submitting
    # this, so a missing pipe or reader means that it has given up on it.
    try:
        rfd = os.open(to_path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return
    try:
        wfd = os.open(back_path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # FileNotFoundError, or ENXIO: no reader any more
        os.close(rfd)
        return
    os.set_blocking(rfd, True)
    os.set_blocking(wfd, True)
    # Both ends are open: nothing of the stream needs a name any more.
    folder = os.path.dirname(to_path)
    for path in (to_path, back_path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(folder)
    idle = select.poll()
    idle.register(rfd, select.POLLIN)
    try:
        while True:
            if not idle.poll(_IDLE_EXIT * 1000):
                with contextlib.suppress(BrokenPipeError):
                    _write_all(wfd, _frame(_BYE, b""))
                return
            head = _read_exact(rfd, _HEADER.size)
            if head is None:
                return
            size, _kind = _HEADER.unpack(head)
            body = _read_exact(rfd, size)
            if body is None:
                return
            try:
                payload, reducer = pickle.loads(body)
                del body
                packet = run_pickled_batch(payload, reducer)
                del payload
                if type(packet) is bytes:
                    frame = _frame(_BYTES, packet)
                else:
                    frame = _frame(_PACKET, pickle.dumps(packet, 5))
            except Exception as exc:
                frame = _frame(_ERROR, _pickle_error(exc))
            try:
                _write_all(wfd, frame)
            except BrokenPipeError:
                return  # the caller stopped listening
            del frame
    finally:
        os.close(rfd)
        os.close(wfd)


def _frame(kind: int, data: bytes) -> bytes:
    return _HEADER.pack(len(data), kind) + data


def _pickle_error(exc: BaseException) -> bytes:
    import cloudpickle  # as loky does: exception classes of __main__ too

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        return cloudpickle.dumps((exc, text), 5)
    except Exception:
        # The exception itself does not pickle: its type name and message.
        return pickle.dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), text), 5)


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, _PIPE_SIZE))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- caller side --------------------------------------------------------------


class RemoteTraceback(Exception):
    """The worker-side traceback of a task's exception (its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


class StreamResult:
    """What the callback of a streamed batch receives: ``result()`` gives
    the packet or raises, as a done loky future would."""

    __slots__ = ("_error", "_packet")

    def __init__(self, packet: Any = None, error: BaseException | None = None):
        self._packet, self._error = packet, error

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._packet


class _Stream:
    __slots__ = (
        "back_fd",
        "buffer",
        "folder",
        "future",
        "outbox",
        "pending",
        "to_fd",
    )

    def __init__(self, executor: Any, root: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="para-stream-", dir=root)
        # If the caller dies before a worker opened (and removed) the pipes,
        # loky's resource tracker removes them.
        resource_tracker.register(self.folder, "folder")
        to_path = os.path.join(self.folder, "to")
        back_path = os.path.join(self.folder, "back")
        try:
            os.mkfifo(to_path, 0o600)
            os.mkfifo(back_path, 0o600)
            # Read-write: opening never waits for the worker, and writes
            # queue in the pipe until it starts. Non-blocking: a write never
            # hangs on a worker that died (see Streams._send).
            self.to_fd = os.open(to_path, os.O_RDWR | os.O_NONBLOCK)
            try:
                self.back_fd = os.open(back_path, os.O_RDONLY | os.O_NONBLOCK)
            except BaseException:
                os.close(self.to_fd)
                raise
        except BaseException:
            self._remove_folder()
            raise
        for fd in (self.to_fd, self.back_fd):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        self.buffer = bytearray()
        # (callback, frame) of each batch sent and not answered, in order.
        self.pending: collections.deque = collections.deque()
        # What the pipe had no room for yet (memoryviews), sent by _poll.
        self.outbox: collections.deque = collections.deque()
        try:
            self.future = executor.submit(serve, to_path, back_path)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in (self.to_fd, self.back_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._remove_folder()

    def _remove_folder(self) -> None:
        # Left only when the worker never opened the pipes.
        shutil.rmtree(self.folder, ignore_errors=True)
        resource_tracker.unregister(self.folder, "folder")


class Streams:
    """Streams to the ``n_workers`` workers of ``executor``, for one call.

    A worker leaves its stream after ``_IDLE_EXIT`` without a batch (so a
    call paused in a generator's consumer never holds the workers that
    another call, maybe made by that consumer, waits for); what was sent to
    it meanwhile goes to another stream, opened when needed.
    """

    def __init__(self, executor: Any, n_workers: int) -> None:
        self._executor = executor
        self._n_workers = n_workers
        self._root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self._streams: list[_Stream] = []
        self._resend: collections.deque = collections.deque()
        self._error: BaseException | None = None  # a worker died
        self._delivered = 0
        self.open = True
        try:
            for _ in range(n_workers):
                self._open()
        except BaseException:
            self.close()
            raise
        _open_in_this_thread().append(self)

    def _open(self) -> _Stream:
        stream = _Stream(self._executor, self._root or tempfile.gettempdir())
        self._streams.append(stream)
        return stream

    # submitting --------------------------------------------------------------
    def submit(self, payload: Any, reducer: Any, callback: Callable | None) -> None:
        """Send a batch; ``callback(result)`` runs in :meth:`pump`."""
        self._flush()
        body = pickle.dumps((payload, reducer), 5)
        # Header and body go out one after the other: a big payload is not
        # copied once more to join them.
        self._send(callback, (_HEADER.pack(len(body), _BATCH), body))

    def _send(self, callback: Callable | None, frame: tuple[bytes, bytes]) -> None:
        if self._error is not None:
            self._fail(callback, self._error)
            return
        if len(self._streams) < self._n_workers:
            self._open()
        stream = min(self._streams, key=lambda s: len(s.pending))
        stream.pending.append((callback, frame))
        stream.outbox.extend(memoryview(part) for part in frame)
        self._write_out(stream)

    def _write_out(self, stream: _Stream) -> None:
        """Write what fits in the pipe now; the rest waits for _poll. Never
        blocks: the caller must stay free to notice a timeout or a death."""
        outbox = stream.outbox
        while outbox:
            try:
                n = os.write(stream.to_fd, outbox[0])
            except BlockingIOError:
                return
            if n == len(outbox[0]):
                outbox.popleft()
            else:
                outbox[0] = outbox[0][n:]

    def _flush(self) -> None:
        """Send again what streams that were left had not answered."""
        while self._resend:
            self._send(*self._resend.popleft())

    # waiting ---------------------------------------------------------------------
    def pump(self, timeout: float | None) -> bool:
        """Deliver finished batches to their callbacks; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            before = self._delivered
            wait = _CHECK_EVERY
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0.0))
            self._poll(wait)
            self._flush()
            if self._delivered != before:
                return True
            if not any(s.pending for s in self._streams):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _poll(self, wait: float) -> None:
        # The streams of the other open calls of this thread are served too:
        # a paused generator's workers may be blocked writing results that
        # only this thread can take in (two generators zipped, for one).
        owners = [self] + [o for o in _open_in_this_thread() if o is not self]
        pairs = [(owner, stream) for owner in owners for stream in owner._streams]
        poller = select.poll()
        for _owner, stream in pairs:
            poller.register(stream.back_fd, select.POLLIN)
            if stream.outbox:
                poller.register(stream.to_fd, select.POLLOUT)
        ready = {fd for fd, _event in poller.poll(wait * 1000)}
        for owner, stream in pairs:
            if stream not in owner._streams:
                continue
            if stream.to_fd in ready:
                owner._write_out(stream)
            done = stream.future.done()
            if stream.back_fd in ready or done:
                # A finished serve() has written all it will: read it all
                # (results, then its goodbye) before judging how it ended,
                # or answered batches would be sent, and run, again.
                owner._read(stream)
            if done and stream in owner._streams:
                owner._end(stream)  # no goodbye: it never started, or raised
        for owner in owners[1:]:
            owner._flush()

    def settle(self) -> None:
        """Take in every result on the way, then close (for good: the call
        goes on through loky's futures)."""
        while self._resend or any(s.pending for s in self._streams):
            self.pump(None)
        self.close()

    def _read(self, stream: _Stream) -> None:
        ended = False
        while True:
            try:
                chunk = os.read(stream.back_fd, _PIPE_SIZE)
            except BlockingIOError:
                break
            if not chunk:
                ended = True
                break
            stream.buffer += chunk
        buffer = stream.buffer
        while len(buffer) >= _HEADER.size:
            size, kind = _HEADER.unpack_from(buffer)
            end = _HEADER.size + size
            if len(buffer) < end:
                break
            if kind == _BYE:
                self._leave(stream)
                return
            data = bytes(buffer[_HEADER.size : end])
            del buffer[:end]
            callback, _sent = stream.pending.popleft()
            self._delivered += 1
            try:
                result = _result(kind, data)
            except Exception as exc:  # e.g. an exception that does not unpickle
                result = StreamResult(error=exc)
            if callback is not None:
                callback(result)
        if ended:
            self._end(stream)

    def _leave(self, stream: _Stream) -> None:
        """The worker left ``stream``: resend what it had not answered."""
        self._streams.remove(stream)
        stream.close()
        self._resend.extend(stream.pending)

    def _end(self, stream: _Stream) -> None:
        """``stream`` ended without a word: its worker died, or the stream
        task failed or never ran. Fail what it was running."""
        error: BaseException | None
        try:
            # loky notices a dead worker within moments and says how it died.
            error = stream.future.exception(timeout=30)
        except BaseException as exc:  # still running after 30 s, cancelled
            error = exc
        if error is None:  # it returned: the pipes were gone (not ours)
            self._leave(stream)
            return
        self._streams.remove(stream)
        stream.close()
        if self._error is None:
            self._error = error
        for callback, _sent in stream.pending:
            self._fail(callback, error)

    def _fail(self, callback: Callable | None, error: BaseException) -> None:
        self._delivered += 1
        if callback is not None:
            callback(StreamResult(error=error))

    def close(self) -> None:
        self.open = False
        for stream in self._streams:
            stream.close()
        self._streams = []
        self._resend.clear()
        with contextlib.suppress(ValueError):
            _open_in_this_thread().remove(self)


# A call paused in its generator's consumer keeps its streams, and its
# workers may block writing results nobody reads. A new loky call made in the
# same thread (maybe by that consumer) first settles them: with loky's
# futures it would have waited for those batches too.
_local = threading.local()


def _open_in_this_thread() -> list[Streams]:
    try:
        return _local.open
    except AttributeError:
        _local.open = []
        return _local.open


def settle_open_streams() -> None:
    """Settle the streams other calls of this thread left open (paused)."""
    for streams in list(_open_in_this_thread()):
        streams.settle()


def _result(kind: int, data: bytes) -> StreamResult:
    if kind == _BYTES:
        return StreamResult(data)
    if kind == _PACKET:
        return StreamResult(pickle.loads(data))
    exc, text = pickle.loads(data)
    exc.__cause__ = RemoteTraceback(text)
    return StreamResult(error=exc)
