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

from para_persist import CorruptFileError, LoadLimitError, dump, load  # noqa: E402
from para_persist._compat import read_zfile, write_zfile  # noqa: E402
from para_persist._pickler import HEAD  # noqa: E402


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
    # joblib 0.10-0.11 wrote no padding: each of the three arrays mapped from
    # these files starts off a multiple of 16 bytes and gets joblib's warning.
    files = [p for p in _sample_files(joblib_files) if p.suffix == ".pkl"]
    assert len(files) >= 4
    for path in files:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = load(path, mmap_mode="r")
        assert [w.category for w in caught] == [UserWarning] * 3, path
        for w, arr in zip(caught, [got[0], got[1], got[4]]):
            assert str(w.message) == (
                f"The memmapped array {np.asarray(arr)} loaded from the file "
                f"{path} is not byte aligned. This may cause segmentation "
                "faults if this memmapped array is used in some libraries "
                "like BLAS or PyTorch. To get rid of this warning, regenerate "
                "your pickle file with joblib >= 1.2.0. See "
                "https://github.com/joblib/joblib/issues/563 for more details"
            )
        del got
        # In memory, nothing to warn about.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load(path)


def test_aligned_files_map_without_warning(folder):
    value = [np.arange(5, dtype="<i8"), np.arange(3.0), np.empty((0, 2))]
    dump(value, folder / "p.pkl")
    data = (folder / "p.pkl").read_bytes()
    # The same bytes without para's head: joblib's own layout, read as a
    # stream; both carry joblib's alignment metadata.
    (folder / "j.pkl").write_bytes(data[len(HEAD) :])
    for name in ("p.pkl", "j.pkl"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = load(folder / name, mmap_mode="r")
        assert all(type(a) is np.memmap for a in got)
        del got


_OLD_FORMAT = (
    "The file '{}' has been generated with a joblib version less than 0.10. "
    "Please regenerate this pickle file."
)


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_joblib_09_files_give_joblibs_deprecation_warning(
    folder, joblib09, compressed, mmap_mode
):
    a = np.arange(6.0)
    path = _write_09(folder, lambda w: [w(a), w(a + 1)], joblib09, compressed)
    sys.modules.pop("joblib.numpy_pickle")
    sys.modules.pop("joblib")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = load(path, mmap_mode=mmap_mode)
    # Once per load, however many arrays, pointing at the caller.
    assert [w.category for w in caught] == [DeprecationWarning]
    assert str(caught[0].message) == _OLD_FORMAT.format(path)
    assert caught[0].filename == __file__
    assert np.array_equal(got[1], a + 1)
    del got
    # Turned into an error, it is raised as itself.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(DeprecationWarning) as raised:
            load(path, mmap_mode=mmap_mode)
    assert str(raised.value) == _OLD_FORMAT.format(path)


def test_current_files_give_no_deprecation_warning(folder, joblib_files):
    dump([np.arange(3)], folder / "p.pkl")
    for path in [folder / "p.pkl", *_sample_files(joblib_files)]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            load(path)
        assert not [w for w in caught if w.category is DeprecationWarning], path


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
    with pytest.warns(DeprecationWarning, match="less than 0.10"):
        got = load(path)
    assert np.array_equal(got["a"], a) and np.array_equal(got["b"][0], b)
    assert got["b"][1] == "text"
    if not compressed:
        with pytest.warns(DeprecationWarning, match="less than 0.10"):
            mm = load(path, mmap_mode="r")
        assert isinstance(mm["a"], np.memmap)
        del mm


@pytest.mark.parametrize("compressed", [False, True])
def test_joblib_09_formats_count_against_max_bytes(folder, joblib09, compressed):
    a = np.arange(100_000.0)
    path = _write_09(folder, lambda w: {"a": w(a)}, joblib09, compressed)
    sys.modules.pop("joblib.numpy_pickle")
    sys.modules.pop("joblib")
    with pytest.warns(DeprecationWarning, match="less than 0.10"):
        got = load(path, max_bytes=a.nbytes + 64 * 1024)
    assert np.array_equal(got["a"], a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(LoadLimitError, match=str(a.nbytes)):
            load(path, max_bytes=a.nbytes - 1)
    if not compressed:  # a mapped sibling does not count
        with pytest.warns(DeprecationWarning, match="less than 0.10"):
            mm = load(path, mmap_mode="r", max_bytes=64 * 1024)
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
    with (
        pytest.raises(CorruptFileError),
        pytest.warns(DeprecationWarning, match="less than 0.10"),
    ):
        load(folder / "bad.pkl")


def test_sibling_name_cannot_escape_folder(folder, joblib09):
    w = joblib09.NDArrayWrapper("../../etc/passwd", np.ndarray)
    (folder / "v.pkl").write_bytes(pickle.dumps([w], protocol=2))
    sys.modules.pop("joblib.numpy_pickle")
    sys.modules.pop("joblib")
    with pytest.raises(CorruptFileError, match="bad sibling"):
        load(folder / "v.pkl")
