"""para_joblib offers joblib's whole public API with joblib's signatures."""

from __future__ import annotations

import importlib
import inspect
import types

import joblib
import pytest

import para_joblib


def same_signature(ours, theirs) -> bool:
    """Whether two callables take the same parameters, as joblib users see them.

    Names, kinds, order and defaults must agree. Annotations are left out
    (para's public API has type hints, joblib's has none), and defaults compare
    by ``repr`` when ``==`` fails: joblib marks "use the active configuration"
    defaults with sentinel objects (``default(None)``) that compare by
    identity, so no other library's object can ever be ``==`` to them.

    The only differences allowed, which no joblib call can notice: para may
    add keyword-only parameters with a default after joblib's (``load(...,
    *, trusted=True)``), listed by :func:`para_extensions`, and may give a
    default to a parameter joblib requires (``BatchedCalls(items)``).
    """
    a, b = _bare(inspect.signature(ours)), _bare(inspect.signature(theirs))
    if a == b or str(a) == str(b):
        return True
    a = _required_where(a, b)
    extra = para_extensions(ours, theirs)
    if extra is None:
        return False
    kept = [p for p in a.parameters.values() if p.name not in extra]
    return str(a.replace(parameters=kept)) == str(b)


def _required_where(ours: inspect.Signature, theirs: inspect.Signature):
    """``ours`` without the defaults of parameters that ``theirs`` requires."""
    empty = inspect.Parameter.empty
    params = []
    for p in ours.parameters.values():
        ref = theirs.parameters.get(p.name)
        if ref is not None and ref.default is empty and p.kind is ref.kind:
            p = p.replace(default=empty)
        params.append(p)
    return ours.replace(parameters=params)


def para_extensions(ours, theirs) -> list[str] | None:
    """Keyword-only parameters with defaults that para adds, or None if others."""
    a, b = inspect.signature(ours), inspect.signature(theirs)
    extra = [name for name in a.parameters if name not in b.parameters]
    for name in extra:
        p = a.parameters[name]
        if p.kind is not p.KEYWORD_ONLY or p.default is p.empty:
            return None
    return extra


def _bare(sig: inspect.Signature) -> inspect.Signature:
    empty = inspect.Parameter.empty
    return sig.replace(
        parameters=[p.replace(annotation=empty) for p in sig.parameters.values()],
        return_annotation=inspect.Signature.empty,
    )


SUBMODULES = [
    "compressor",
    "hashing",
    "logger",
    "memory",
    "numpy_pickle",
    "parallel",
    "pool",
]


def test_all_covers_joblib_all():
    missing = set(joblib.__all__) - set(para_joblib.__all__)
    assert not missing, f"para_joblib lacks {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(joblib.__all__))
def test_top_level_signature_matches_joblib(name):
    ours, theirs = getattr(para_joblib, name), getattr(joblib, name)
    assert same_signature(ours, theirs), (
        inspect.signature(ours),
        inspect.signature(theirs),
    )
    assert isinstance(ours, type) == isinstance(theirs, type)


def _public_callables(module: types.ModuleType) -> dict[str, object]:
    return {
        name: getattr(module, name)
        for name in getattr(module, "__all__", dir(module))
        if not name.startswith("_")
        and callable(getattr(module, name))
        and not isinstance(getattr(module, name), types.ModuleType)
    }


@pytest.mark.parametrize("module", SUBMODULES)
def test_submodule_shared_names_match_joblib(module):
    ours = importlib.import_module(f"para_joblib.{module}")
    theirs = importlib.import_module(f"joblib.{module}")
    shared = set(_public_callables(ours)) & set(dir(theirs))
    assert shared, f"para_joblib.{module} shares no name with joblib.{module}"
    for name in sorted(shared):
        mine, ref = getattr(ours, name), getattr(theirs, name)
        if _has_signature(ref):
            assert same_signature(mine, ref), f"{module}.{name}"
        else:  # exception and warning classes
            assert isinstance(mine, type) and issubclass(mine, ref.__mro__[1])


def _has_signature(obj) -> bool:
    try:
        inspect.signature(obj)
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("parallel", ["Parallel", "delayed", "get_active_backend", "parallel_config"]),
        ("memory", ["Memory", "MemorizedResult", "MemorizedFunc"]),
        ("numpy_pickle", ["dump", "load"]),
        ("hashing", ["hash"]),
        ("logger", ["Logger", "PrintTime", "short_format_time"]),
        ("pool", ["MemmappingPool"]),
        ("compressor", ["register_compressor"]),
    ],
)
def test_submodules_have_the_names_client_code_uses(module, names):
    mod = importlib.import_module(f"para_joblib.{module}")
    for name in names:
        assert name in mod.__all__, f"para_joblib.{module}.{name}"
        assert callable(getattr(mod, name))


def test_from_para_joblib_import_logger_like_scikit_learn():
    from para_joblib import logger

    assert logger.short_format_time(5) == joblib.logger.short_format_time(5)
    assert logger.short_format_time(125) == joblib.logger.short_format_time(125)


def test_get_active_backend_reports_the_configured_backend():
    from para_joblib.parallel import get_active_backend, parallel_config

    with parallel_config(backend="threading", n_jobs=3):
        backend, n_jobs = get_active_backend()
    assert n_jobs == 3
    assert "thread" in type(backend).__name__.lower()


def test_shared_constants_agree_with_joblib():
    from para_joblib import compressor, numpy_pickle

    assert numpy_pickle.NUMPY_ARRAY_ALIGNMENT_BYTES == (
        joblib.numpy_pickle.NUMPY_ARRAY_ALIGNMENT_BYTES
    )
    # The wording may differ (para names its own extra); the meaning may not.
    for message in (
        numpy_pickle.LZ4_NOT_INSTALLED_ERROR,
        compressor.LZ4_NOT_INSTALLED_ERROR,
    ):
        assert isinstance(message, str) and "lz4" in message.lower()
