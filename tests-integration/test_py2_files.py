"""Files joblib wrote under Python 2: joblib's ValueError by default, and an
explicit ``encoding`` to read them. The files are the ones of the installed
joblib wheel's test data, used in place (never copied into this repository).
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest

import para_joblib
import para_persist

_DATA = Path(importlib.util.find_spec("joblib").origin).parent / "test" / "data"
PY2_FILES = sorted(
    p for p in _DATA.glob("joblib_*py27*") if not p.name.endswith(".npy")
)
MESSAGE = (
    "You may be trying to read with python 3 a joblib pickle generated with python 2."
)


def test_there_are_python2_files():
    assert len(PY2_FILES) >= 10


@pytest.mark.parametrize("path", PY2_FILES, ids=lambda p: p.name)
def test_python2_file_raises_joblibs_value_error(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError) as theirs:
            joblib.load(path)
        with pytest.raises(ValueError) as ours:
            para_joblib.load(path)
    assert MESSAGE in str(theirs.value)
    assert MESSAGE in str(ours.value)
    assert "encoding='latin1'" in str(ours.value)  # and how to read it anyway


@pytest.mark.parametrize("path", PY2_FILES, ids=lambda p: p.name)
def test_python2_file_reads_with_an_explicit_encoding(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        got = para_persist.load(path, encoding="latin1")
    # joblib's test data: a list of arrays (the first is arange) and strings.
    assert isinstance(got, list)
    arrays = [x for x in got if isinstance(x, np.ndarray)]
    assert arrays
    np.testing.assert_array_equal(arrays[0], np.arange(len(arrays[0])))
    assert any(isinstance(x, str) for x in got)


def test_bad_encoding_is_refused():
    with pytest.raises(ValueError, match="encoding must be"):
        para_persist.load(PY2_FILES[0], encoding="no-such-codec")
    with pytest.raises(ValueError, match="encoding must be"):
        para_persist.load(PY2_FILES[0], encoding="bytes")
