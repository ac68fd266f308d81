"""verbose lines in joblib's format, and the progress bar option."""

from __future__ import annotations

import itertools
import re

import pytest
from _helpers import square

from para_core import Parallel, delayed, parallel_config
from para_core._progress import _verbosity_filter, short_format_time

TIME = r"(?: +\d+\.\ds|\d+\.\dmin)"


def test_short_format_time():
    assert short_format_time(0.5) == "   0.5s"
    assert short_format_time(90) == " 1.5min"


def test_verbosity_filter_lag_grows():
    shown = [i for i in range(200) if not _verbosity_filter(i, 5)]
    gaps = [b - a for a, b in itertools.pairwise(shown)]
    assert shown[0] == 0
    assert gaps == sorted(gaps)
    assert all(not _verbosity_filter(i, 11) for i in range(50))
    assert all(_verbosity_filter(i, 0) for i in range(50))


def test_sequential_verbose_lines(capsys):
    Parallel(n_jobs=1, verbose=10)(delayed(square)(i) for i in range(3))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(
        r"\[Parallel\(n_jobs=1\)\]: Done   1 tasks      \| elapsed:" + TIME, lines[0]
    )
    assert re.fullmatch(
        r"\[Parallel\(n_jobs=1\)\]: Done   3 out of   3 \| elapsed:"
        + TIME
        + " finished",
        lines[1],
    )


def test_parallel_verbose_lines(capsys):
    Parallel(n_jobs=2, backend="threading", verbose=5)(
        delayed(square)(i) for i in range(12)
    )
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "[Parallel(n_jobs=2)]: Using backend ThreadingBackend with 2 "
        "concurrent workers."
    )
    assert re.fullmatch(
        r"\[Parallel\(n_jobs=2\)\]: Done  12 out of  12 \| elapsed:"
        + TIME
        + " finished",
        err[-1],
    )
    for line in err[1:-1]:
        assert re.fullmatch(r"\[Parallel\(n_jobs=2\)\]: (Done .*|Batch .*)", line)


def test_verbose_50_goes_to_stdout(capsys):
    Parallel(n_jobs=1, verbose=50)(delayed(square)(i) for i in range(2))
    captured = capsys.readouterr()
    assert "finished" in captured.out and captured.err == ""


def test_silent_by_default(capsys):
    Parallel(n_jobs=2, backend="threading")(delayed(square)(i) for i in range(5))
    assert capsys.readouterr() == ("", "")


class FakeBar:
    instances: list = []

    def __init__(self, total=None, file=None):
        self.total = total
        self.n = 0
        self.closed = False
        FakeBar.instances.append(self)

    def update(self, n):
        self.n += n

    def close(self):
        self.closed = True


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("sized", [True, False])
def test_progress_bar_factory(n_jobs, sized):
    FakeBar.instances.clear()
    tasks = [delayed(square)(i) for i in range(25)]
    source = tasks if sized else iter(tasks)
    out = Parallel(n_jobs=n_jobs, backend="threading", progress_bar=FakeBar)(source)
    assert out == [i * i for i in range(25)]
    (bar,) = FakeBar.instances
    assert bar.n == 25 and bar.closed
    assert bar.total == 25


def test_progress_bar_from_config_and_closed_on_error():
    FakeBar.instances.clear()
    with parallel_config(progress_bar=FakeBar), pytest.raises(ZeroDivisionError):
        Parallel(n_jobs=2, backend="threading")(delayed(divmod)(1, i) for i in range(3))
    (bar,) = FakeBar.instances
    assert bar.closed


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    out = Parallel(n_jobs=2, backend="threading", progress_bar=True)(
        delayed(square)(i) for i in range(10)
    )
    assert out == [i * i for i in range(10)]
    assert "10/10" in capsys.readouterr().err


class CountingParallel(Parallel):
    """The usual joblib recipe: override print_progress to drive a bar."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def print_progress(self):
        self.seen.append((self.n_completed_tasks, self.n_dispatched_tasks))


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_print_progress_override(n_jobs):
    par = CountingParallel(n_jobs=n_jobs, backend="threading")
    assert par(delayed(square)(i) for i in range(30)) == [i * i for i in range(30)]
    done = [c for c, _ in par.seen]
    assert done == sorted(done) and done[-1] == 30
    assert all(c <= d for c, d in par.seen)
