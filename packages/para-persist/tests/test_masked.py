"""numpy masked arrays: their own pickled state (7 fields) loads, trusted or not.

joblib writes a ``numpy.ma.MaskedArray`` with its ordinary pickle (only plain
arrays, matrices and memmaps get a raw-data placeholder), so every joblib
file holding one carries ``_mareconstruct`` + a 7-field BUILD state. The
check that guards ``ndarray.__setstate__`` must know that state.
"""

from __future__ import annotations

import pickle

import pytest

from para_persist import CorruptFileError, dump, load

np = pytest.importorskip("numpy")


def _cases():
    data = np.array([1, "a", None, 2.5], dtype=object)
    rec = np.array([(1, 2.0), (3, 4.0)], dtype=[("a", "i4"), ("b", "f8")])
    return {
        "mask": np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0]),
        "no mask": np.ma.array([1, 2, 3]),
        "fill value": np.ma.array([1.0, 2.0], mask=[1, 0], fill_value=-9.0),
        "int fill": np.ma.masked_equal(np.arange(6).reshape(2, 3), 4),
        "fortran": np.ma.masked_greater(np.asfortranarray(np.ones((3, 4))), 0),
        "objects": np.ma.array(data, mask=[0, 1, 0, 1]),
        "structured": np.ma.array(rec, mask=[(True, False), (False, True)]),
        "big": np.ma.masked_less(np.arange(100_000.0), 50.0),
        "0-d": np.ma.array(3.0, mask=True),
        "empty": np.ma.array(np.empty((0, 3))),
    }


def _same(a, b):
    assert type(b) is type(a)
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(np.ma.getmaskarray(b), np.ma.getmaskarray(a))
    np.testing.assert_array_equal(b.filled(a.fill_value), a.filled(a.fill_value))
    assert repr(b.fill_value) == repr(a.fill_value)
    assert b.flags.f_contiguous == a.flags.f_contiguous


@pytest.mark.parametrize("name", list(_cases()))
@pytest.mark.parametrize("writer", ["para", "para-zlib", "pickle2", "pickle5"])
@pytest.mark.parametrize("trusted", [True, False])
def test_masked_arrays_load_as_written(folder, name, writer, trusted):
    value = _cases()[name]
    path = folder / "ma.pkl"
    if writer.startswith("pickle"):
        # What joblib writes for a masked array: its plain pickle.
        path.write_bytes(pickle.dumps(value, protocol=int(writer[-1])))
    else:
        dump(value, path, compress=("zlib", 1) if writer.endswith("zlib") else 0)
    _same(value, load(path, trusted=trusted))
    _same(value, load(path, trusted=trusted, mmap_mode=None))


def test_masked_constant_and_nested(folder):
    value = {"m": np.ma.masked, "arrs": [np.ma.array([1, 2], mask=[1, 0])] * 2}
    dump(value, folder / "m.pkl")
    for trusted in (True, False):
        out = load(folder / "m.pkl", trusted=trusted)
        assert out["m"] is np.ma.masked
        assert out["arrs"][0] is out["arrs"][1]
        _same(value["arrs"][0], out["arrs"][0])


class _ShortMask:
    """Pickles as a masked array whose mask has fewer bytes than items."""

    def __reduce__(self):
        good = np.ma.array([1.0, 2.0, 3.0], mask=[0, 1, 0])
        func, args, state = good.__reduce__()
        return func, args, (*state[:5], b"\x00\x01", state[6])


@pytest.mark.parametrize("trusted", [True, False])
def test_masked_state_with_a_short_mask_is_refused(folder, trusted):
    (folder / "s.pkl").write_bytes(pickle.dumps(_ShortMask(), protocol=2))
    with pytest.raises(CorruptFileError, match="stored with 2 bytes"):
        load(folder / "s.pkl", trusted=trusted)
