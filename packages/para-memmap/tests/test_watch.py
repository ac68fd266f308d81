"""Write-protection of the caller's arrays (userfaultfd, Linux 6.7+)."""

from __future__ import annotations

import io
import mmap
import os

import numpy as np
import pytest

from para_memmap import _watch

pytestmark = pytest.mark.skipif(
    not _watch.available(),
    reason="no asynchronous write-protection here (Linux < 6.7 or not Linux)",
)


def pages_of(a):
    lo, hi = _watch.page_range(a.__array_interface__["data"][0], a.nbytes)
    return lo + _watch.PAGE, hi - _watch.PAGE  # whole pages of `a` only


def test_a_write_is_seen_and_located_then_protected_again():
    a = np.ones(4_000_000)
    lo, hi = pages_of(a)
    assert _watch.arm(lo, hi) and not _watch.written(lo, hi)
    a[2_000_000] = 2.0
    assert _watch.written(lo, hi)
    regions = _watch.written_regions(lo, hi)
    address = a[2_000_000:].__array_interface__["data"][0]
    assert len(regions) == 1 and regions[0][0] <= address < regions[0][1]
    assert regions[0][1] - regions[0][0] <= 2 * 2**20  # a page (or a huge page)
    assert not _watch.written(lo, hi)  # reported pages are protected again
    a[::4096] = 3.0  # every 8th page: too many regions to list them all
    assert _watch.written_regions(lo, hi) is None
    assert _watch.arm(lo, hi) and not _watch.written(lo, hi)
    a[::512] = 4.0  # every page: one merged region
    assert _watch.written_regions(lo, hi) == [(lo, hi)]


def test_writes_by_the_kernel_count_too():
    a = np.zeros(1_000_000)
    lo, hi = pages_of(a)
    assert _watch.arm(lo, hi)
    io.BytesIO(b"x" * 8192).readinto(memoryview(a.view(np.uint8))[100_000:108_192])
    assert _watch.written(lo, hi)


def test_unprotected_or_shared_memory_counts_as_written():
    never_armed = np.ones(1_000_000)
    assert _watch.written(*pages_of(never_armed))
    shared = mmap.mmap(-1, 1 << 22)  # MAP_SHARED: other processes may write it
    view = np.frombuffer(shared, dtype=np.uint8)
    assert not _watch.arm(*pages_of(view))
    del view
    shared.close()


def test_a_forked_child_does_not_disturb_the_parent():
    a = np.ones(1_000_000)
    lo, hi = pages_of(a)
    assert _watch.arm(lo, hi)
    pid = os.fork()
    if pid == 0:  # the child's writes go to its own copies of the pages
        a[:] = 7.0
        os._exit(0 if _watch.available() else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert not _watch.written(lo, hi) and a[0] == 1.0
