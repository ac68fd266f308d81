"""Files of every joblib generation load without joblib."""

from __future__ import annotations

import io
import pickle
import sys
import types
import warnings

import pytest

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")

from para_persist import CorruptFileError, load  # noqa: E402
from para_persist._npwrp import read_zfile, write_zfile  # noqa: E402


def _expected():
    return [
        np.arange(5, dtype="<i8"),
        np.arange(5, dtype="<f8"),
        np.array([1, "abc", {"a": 1, "b": 2}], dtype=object),
        bytes(range(256)),
        np.matrix([0, 1, 2], dtype="<i8"),
        "C'est l'été !",
    ]


def _same(got, want):
    assert isinstance(got, list) and len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) in (type(w), np.memmap)
        if isinstance(w, np.ndarray):
            assert g.dtype == w.dtype and g.shape == w.shape
            assert list(np.asarray(g).ravel()) == list(np.asarray(w).ravel())
        else:
            assert g == w


def _sample_files(folder):
    files = sorted(p for p in folder.iterdir() if p.name.startswith("joblib_"))
    assert len(files) >= 20, f"expected joblib sample files in {folder}"
    return files


def test_every_sample_file_loads(joblib_files):
    for path in _sample_files(joblib_files):
        _same(load(path), _expected())
        _same(load(path, trusted=False), _expected())


def test_sample_files_with_mmap(joblib_files):
    for path in _sample_files(joblib_files):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = load(path, mmap_mode="r")
        _same(got, _expected())
        if path.suffix == ".pkl":
            assert isinstance(got[0], np.memmap)


def test_sample_file_unaligned_mmap_warns(joblib_files):
    path = joblib_files / "joblib_0.10.0_pickle_py33_np18.pkl"
    with pytest.warns(UserWarning, match="not 16-byte aligned"):
        load(path, mmap_mode="r")


def test_sample_file_from_file_object(joblib_files):
    for path in _sample_files(joblib_files)[:6]:
        with open(path, "rb") as f:
            _same(load(f), _expected())
        _same(load(io.BytesIO(path.read_bytes())), _expected())


@pytest.fixture
def joblib09(monkeypatch):
    """Fake ``joblib.numpy_pickle`` module holding 0.8-0.9 placeholder classes."""
    mod = types.ModuleType("joblib.numpy_pickle")

    class NDArrayWrapper:
        def __init__(self, filename, subclass, allow_mmap=True):
            self.filename, self.subclass, self.allow_mmap = (
                filename,
                subclass,
                allow_mmap,
            )

    class ZNDArrayWrapper(NDArrayWrapper):
        def __init__(self, filename, init_args, state):
            self.filename, self.init_args, self.state = filename, init_args, state

    for cls in (NDArrayWrapper, ZNDArrayWrapper):
        cls.__module__ = "joblib.numpy_pickle"
        cls.__qualname__ = cls.__name__
        setattr(mod, cls.__name__, cls)
    pkg = types.ModuleType("joblib")
    pkg.numpy_pickle = mod
    monkeypatch.setitem(sys.modules, "joblib", pkg)
    monkeypatch.setitem(sys.modules, "joblib.numpy_pickle", mod)
    return mod


def _write_09(folder, value_factory, mod, compressed):
    """Write a file the way joblib 0.8-0.9 did: pickle + one file per array."""
    arrays = []

    def wrap(arr):
        name = f"v.pkl_{len(arrays) + 1:02d}.npy"
        arrays.append(arr)
        if compressed:
            name += ".z"
            state = arr.__reduce__()[2]
            with open(folder / name, "wb") as f:
                write_zfile(f, arr.tobytes("A" if arr.flags.f_contiguous else "C"))
            return mod.ZNDArrayWrapper(name, (type(arr), (0,), b"b"), state[:-1])
        np.save(folder / name, arr)
        return mod.NDArrayWrapper(name, type(arr))

    payload = pickle.dumps(value_factory(wrap), protocol=2)
    with open(folder / "v.pkl", "wb") as f:
        if compressed:
            write_zfile(f, payload)
        else:
            f.write(payload)
    return folder / "v.pkl"


@pytest.mark.parametrize("compressed", [False, True])
def test_joblib_09_formats(folder, joblib09, compressed):
    a = np.arange(12.0).reshape(3, 4)
    b = np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3))
    path = _write_09(
        folder, lambda w: {"a": w(a), "b": [w(b), "text"]}, joblib09, compressed
    )
    sys.modules.pop("joblib.numpy_pickle")
    sys.modules.pop("joblib")
    ctx = pytest.warns(DeprecationWarning) if compressed else warnings.catch_warnings()
    with ctx:
        got = load(path)
    assert np.array_equal(got["a"], a) and np.array_equal(got["b"][0], b)
    assert got["b"][1] == "text"
    if not compressed:
        mm = load(path, mmap_mode="r")
        assert isinstance(mm["a"], np.memmap)
        del mm


@pytest.mark.parametrize(
    "kwargs", [{}, {"ensure_native_byte_order": False}, {"mmap_mode": "r"}]
)
def test_joblib_09_sibling_arrays_turn_native_as_joblib(folder, joblib09, kwargs):
    # joblib's reader of 0.8-0.9 sibling .npy files turns a foreign-order
    # array native whatever load is asked (a memory map becomes a copy in
    # memory then); by its rule, a structured one with an order-less field
    # stays as stored (and mapped).
    other = ">" if sys.byteorder == "little" else "<"
    plain = np.arange(6, dtype=other + "i4").reshape(2, 3)
    record = np.array([(1, b"ab"), (2, b"c")], dtype=[("a", other + "i4"), ("s", "S2")])
    path = _write_09(folder, lambda w: [w(plain), w(record)], joblib09, False)
    sys.modules.pop("joblib.numpy_pickle")
    sys.modules.pop("joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        got_plain, got_record = load(path, **kwargs)
    assert got_plain.dtype == plain.dtype.newbyteorder("=")
    assert got_plain.dtype.isnative and got_plain.flags.writeable
    assert np.array_equal(got_plain, plain)
    assert got_record.dtype == record.dtype
    assert got_record.tobytes() == record.tobytes()
    if "mmap_mode" in kwargs:
        assert type(got_record) is np.memmap and got_record.mode == "r"
        assert not got_record.flags.writeable
    else:
        assert type(got_record) is np.ndarray
    del got_plain, got_record


def test_zfile_rejects_impossible_length(folder):
    buf = io.BytesIO()
    write_zfile(buf, b"hello" * 100)
    assert read_zfile(io.BytesIO(buf.getvalue())) == b"hello" * 100
    bad = b"ZF" + f"{2**40:#x}".ljust(19).encode() + buf.getvalue()[21:]
    with pytest.raises(CorruptFileError, match="impossible"):
        read_zfile(io.BytesIO(bad))
    (folder / "bad.pkl").write_bytes(bad)
    # Recognised as a joblib < 0.10 file (which warns), then refused.
    with pytest.raises(CorruptFileError), pytest.warns(DeprecationWarning):
        load(folder / "bad.pkl")


def test_sibling_name_cannot_escape_folder(folder, joblib09):
    w = joblib09.NDArrayWrapper("../../etc/passwd", np.ndarray)
    (folder / "v.pkl").write_bytes(pickle.dumps([w], protocol=2))
    sys.modules.pop("joblib.numpy_pickle")
    sys.modules.pop("joblib")
    with pytest.raises(CorruptFileError, match="bad sibling"):
        load(folder / "v.pkl")
