"""Differential tests: hash equality rules agree with joblib.hash.

Two values hash equal under para exactly when they hash equal under joblib;
para's md5 and sha1 digests are 32 and 40 hex characters like joblib's.
"""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import para_joblib

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    st.binary(max_size=10),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children),
        st.frozensets(scalars, max_size=4),
        st.dictionaries(st.text(max_size=4), children, max_size=4),
    ),
    max_leaves=12,
)


def same(lib, a, b, **kwargs):
    return lib.hash(a, **kwargs) == lib.hash(b, **kwargs)


@settings(max_examples=150, deadline=None)
@given(a=values, b=values)
def test_equality_of_hashes_agrees(a, b):
    assert same(para_joblib, a, b) == same(joblib, a, b)
    assert same(para_joblib, a, a)


@settings(max_examples=80, deadline=None)
@given(d=st.dictionaries(st.text(max_size=5), st.integers(), max_size=8))
def test_dict_and_set_order_do_not_matter(d):
    reordered = dict(reversed(list(d.items())))
    assert same(para_joblib, d, reordered) == same(joblib, d, reordered) is True
    s1, s2 = set(d), set()
    for key in reversed(list(d)):  # other insertion order
        s2.add(key)
    assert same(para_joblib, s1, s2) and same(joblib, s1, s2)


arrays = hnp.arrays(
    dtype=st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.boolean_dtypes()),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=6),
)


@settings(max_examples=100, deadline=None)
@given(a=arrays, b=arrays)
def test_array_equality_rules_agree(a, b):
    assert same(para_joblib, a, b) == same(joblib, a, b)
    assert same(para_joblib, a, a.copy())
    f = np.asfortranarray(a)
    assert same(para_joblib, a, f) == same(joblib, a, f)
    if a.ndim and a.size > 1:
        # A strided view keeps its layout in the hash in both libraries: it
        # differs from its contiguous copies, and equals an equal view.
        view = a[::-1]
        for copy in (np.ascontiguousarray(view), np.asfortranarray(view)):
            assert same(para_joblib, view, copy) == same(joblib, view, copy)
        assert same(para_joblib, view, a.copy()[::-1])


@pytest.mark.parametrize("hash_name", ["md5", "sha1"])
def test_digest_shape_matches(hash_name):
    ours = para_joblib.hash([1, "a"], hash_name=hash_name)
    theirs = joblib.hash([1, "a"], hash_name=hash_name)
    assert len(ours) == len(theirs)
    assert all(c in "0123456789abcdef" for c in ours)


def test_bad_hash_name_raises_like_joblib():
    with pytest.raises(ValueError):
        joblib.hash(1, hash_name="crc")
    with pytest.raises(ValueError, match="crc"):
        para_joblib.hash(1, hash_name="crc")


def test_memmap_coercion_agrees(tmp_path):
    a = np.arange(100.0)
    m = np.memmap(tmp_path / "m.dat", dtype=a.dtype, shape=a.shape, mode="w+")
    m[:] = a
    for coerce in (False, True):
        assert same(para_joblib, a, m, coerce_mmap=coerce) == same(
            joblib, a, m, coerce_mmap=coerce
        )
    del m


def test_fast_hash_follows_the_same_rules():
    pytest.importorskip("xxhash")
    a, b = {"x": [1, 2], "y": np.arange(5)}, {"y": np.arange(5), "x": [1, 2]}
    assert para_joblib.hash(a, hash_name="xxh3") == para_joblib.hash(
        b, hash_name="xxh3"
    )
    assert para_joblib.hash(a, hash_name="xxh3") != para_joblib.hash(
        {"x": [1, 3], "y": np.arange(5)}, hash_name="xxh3"
    )
