"""hash(): equal values hash equal, different values differ, streaming."""

from __future__ import annotations

import collections
import decimal
import hashlib
import pickle
import threading
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import para_cache
from para_cache import Hasher, NumpyHasher, hash

ALGOS = ["md5", "sha1", "xxh3"]

atoms = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
values = st.recursive(
    atoms,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.frozensets(st.integers(), max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=5), values, max_size=8), st.randoms())
@settings(max_examples=60, deadline=None)
def test_dict_order_does_not_matter(d, rnd):
    items = list(d.items())
    rnd.shuffle(items)
    assert hash(d) == hash(dict(items))
    if _has_xxhash():
        assert hash(d, "xxh3") == hash(dict(items), "xxh3")


@given(st.sets(st.integers() | st.text(max_size=4), max_size=12), st.randoms())
@settings(max_examples=60, deadline=None)
def test_set_order_does_not_matter(s, rnd):
    items = list(s)
    rnd.shuffle(items)
    rebuilt = set()
    for x in items:
        rebuilt.add(x)
    assert hash(s) == hash(rebuilt)
    assert hash(frozenset(s)) == hash(frozenset(items))


@given(values)
@settings(max_examples=80, deadline=None)
def test_equal_copies_hash_equal(v):
    assert hash(v) == hash(pickle.loads(pickle.dumps(v)))


@given(values, values)
@settings(max_examples=80, deadline=None)
def test_different_values_hash_differently(a, b):
    if pickle.dumps(a) != pickle.dumps(b) and a != b:
        assert hash(a) != hash(b)


def test_identity_sharing_does_not_matter():
    s = "x" * 10
    shared = [s, s]
    separate = [s, "".join(["x"] * 10)]
    assert hash(shared) == hash(separate)
    inner = [1, 2]
    assert hash([inner, inner]) == hash([[1, 2], [1, 2]])


def test_types_are_distinguished():
    assert hash(1) != hash(1.0)
    assert hash((1, 2)) != hash([1, 2])
    assert hash({1, 2}) != hash(frozenset({1, 2}))
    assert hash({"a": 1}) != hash(collections.OrderedDict(a=1))
    assert hash(b"a") != hash("a")


def test_unorderable_keys_and_members():
    a = {1: "x", "b": 2, (3,): None, None: 0}
    b = dict(reversed(list(a.items())))
    assert hash(a) == hash(b)
    assert hash({1, "a", (2,), None}) == hash({None, (2,), "a", 1})
    assert hash({decimal.Decimal("NaN"), 1}) == hash({1, decimal.Decimal("NaN")})


@pytest.mark.parametrize("name", ALGOS)
def test_digest_lengths_and_stability(name):
    if name == "xxh3":
        pytest.importorskip("xxhash")
    digest = hash({"a": [1, 2.5, "x"]}, hash_name=name)
    assert digest == hash({"a": [1, 2.5, "x"]}, hash_name=name)
    assert len(digest) == (40 if name == "sha1" else 32)
    int(digest, 16)


def test_bad_hash_name_names_the_choices():
    with pytest.raises(ValueError, match=r"'md5'.*'sha1'.*Got hash_name='crc'"):
        hash(1, hash_name="crc")


def test_unpicklable_object_raises():
    import threading

    with pytest.raises((pickle.PicklingError, TypeError)):
        hash(threading.Lock())


def test_local_functions_raise_joblibs_pickling_error():
    # A closure's code says nothing of the values it closes over (make(1) and
    # make(2) below compute different things): no honest hash exists, and
    # joblib refuses it with this error.
    def make(k):
        def inner(x):
            return x + k

        return inner

    for obj in (make(1), [1, {"f": make(2)}], lambda x: x):
        with pytest.raises(pickle.PicklingError, match="PicklingError while hashing"):
            hash(obj)


def test_objects_with_cycles_hash():
    a = [1, 2]
    a.append(a)
    b = [1, 2]
    b.append(b)
    assert hash(a) == hash(b)
    c = [1, 3]
    c.append(c)
    assert hash(a) != hash(c)

    d = {"x": 1, "y": [1]}
    d["self"] = d
    e = {"y": [1], "x": 1}
    e["self"] = e
    assert hash(d) == hash(e)  # dict order still does not matter
    e["x"] = 2
    assert hash(d) != hash(e)


def test_instance_cycle_through_bound_method():
    # As Memory hashes the arguments of a cached method: {"self": obj, ...}
    # where obj holds a bound method of itself.
    obj = _SelfRef()
    obj.me = obj.method
    digest = hash({"self": obj, "x": {"a": [1], "b": [2]}})
    assert digest == hash({"x": {"b": [2], "a": [1]}, "self": obj})
    assert NumpyHasher().hash(obj) == hash(obj)


class _SelfRef:
    def method(self):
        return self


def test_hasher_classes():
    h = Hasher()
    assert h.hash([1, 2]) == hash([1, 2])
    assert NumpyHasher("sha1").hash({"a": 1}) == hash({"a": 1}, "sha1")
    assert Hasher().hash([1], return_digest=False) is None


def test_large_bytes_are_streamed_not_copied():
    blob = b"\x01" * (64 * 2**20)
    hash(blob, "md5")  # warm up
    tracemalloc.start()
    try:
        hash(blob, "md5")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20


# -- numpy -------------------------------------------------------------------
def test_numpy_arrays(tmp_path):
    np = pytest.importorskip("numpy")
    a = np.arange(24, dtype="f8").reshape(4, 6)
    assert hash(a) == hash(a.copy())
    assert hash(a) != hash(a.astype("f4"))
    assert hash(a) != hash(a.reshape(6, 4))
    assert hash(a) != hash(np.asfortranarray(a))
    # A strided view keeps its layout in the hash, as joblib's does.
    assert hash(a[:, ::2]) != hash(np.ascontiguousarray(a[:, ::2]))
    assert hash(a[:, ::2]) != hash(np.asfortranarray(a[:, ::2]))
    assert hash(a[:, ::2]) == hash(a.copy()[:, ::2])
    assert hash(a) != hash(a + 1)
    assert hash(np.float64(1.0)) == hash(np.float64(1.0))
    dates = np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]")
    assert hash(dates) == hash(dates.copy())
    objs = np.array([None, "a", 1], dtype=object)
    assert hash(objs) == hash(objs.copy())
    assert hash(np.zeros(0)) != hash(np.zeros((0, 1)))
    structured = np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])
    other = np.zeros(3, dtype=[("c", "i4"), ("b", "f8")])
    assert hash(structured) != hash(other)
    assert hash({"k": a, "j": [a]}) == hash({"j": [a.copy()], "k": a.copy()})
    assert hash([np.dtype("f4"), np.dtype("f4")]) == hash(
        [np.dtype("f4"), pickle.loads(pickle.dumps(np.dtype("f4")))]
    )


def test_numpy_memmap_coercion(tmp_path):
    np = pytest.importorskip("numpy")
    a = np.arange(100, dtype="i8")
    path = tmp_path / "a.mmap"
    m = np.memmap(path, dtype="i8", mode="w+", shape=(100,))
    m[:] = a
    assert hash(m, coerce_mmap=True) == hash(a, coerce_mmap=True)
    assert hash(m) != hash(a)
    del m


def test_numpy_array_is_not_copied():
    np = pytest.importorskip("numpy")
    a = np.ones(8 * 2**20 // 8)
    hash(a, "xxh3" if _has_xxhash() else "md5")
    tracemalloc.start()
    try:
        hash(a, "md5")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def _has_xxhash():
    try:
        import xxhash  # noqa: F401
    except ImportError:
        return False
    return True


def test_xxh3_without_xxhash_is_a_clear_error(monkeypatch):
    import sys

    import para_cache._hashing

    monkeypatch.setitem(sys.modules, "xxhash", None)
    monkeypatch.setattr(para_cache._hashing, "_FACTORIES", {})
    with pytest.raises(ValueError, match=r"xxhash.*fast-hash"):
        hash(1, "xxh3")


# -- big buffers: md5/sha1 over pieces hashed on every core ------------------


@pytest.mark.parametrize("hash_name", ["md5", "sha1"])
def test_big_arrays_keep_the_equality_rules(hash_name, tmp_path):
    np = pytest.importorskip("numpy")
    from para_cache import _hashing

    # Just above the threshold, and not a whole number of pieces.
    n = (_hashing._TREE_MIN + _hashing._TREE_PIECE // 2) // 8
    a = np.random.default_rng(0).random(n)
    digest = para_cache.hash(a, hash_name)
    assert para_cache.hash(a.copy(), hash_name) == digest
    for index in (0, n // 2, n - 1):  # first, middle and last (partial) piece
        b = a.copy()
        b[index] += 1.0
        assert para_cache.hash(b, hash_name) != digest
    assert para_cache.hash(a.reshape(2, -1), hash_name) != digest  # shape counts
    f = np.asfortranarray(a.reshape(-1, 2))
    assert para_cache.hash(f.copy(order="F"), hash_name) == para_cache.hash(
        f, hash_name
    )
    m = np.memmap(tmp_path / "a.dat", dtype=a.dtype, mode="w+", shape=a.shape)
    m[:] = a
    assert para_cache.hash(m, hash_name, coerce_mmap=True) == digest
    del m


def test_piece_digests_are_the_digests_of_the_pieces():
    from para_cache import _hashing

    data = bytes(range(256)) * (3 * _hashing._TREE_PIECE // 256 + 7)
    expected = b"".join(
        hashlib.md5(data[i : i + _hashing._TREE_PIECE]).digest()
        for i in range(0, len(data), _hashing._TREE_PIECE)
    )
    before = threading.active_count()
    assert _hashing._piece_digests("md5", data) == expected
    assert threading.active_count() == before  # the helper threads are joined
