"""Sphinx configuration of the para documentation site.

Built by the root pyproject's ``docs`` environment with warnings as errors::

    python docs/make_plots.py                      # benchmark JSON -> PNGs
    sphinx-build -W --keep-going -b html docs docs/_build/html
    sphinx-build -W --keep-going -b doctest docs docs/_build/doctest
"""

from __future__ import annotations

import para_cache
import para_core
import para_joblib
import para_memmap
import para_persist

project = "para"
author = "The para developers"
copyright = "2026, The para developers"
release = para_joblib.para_version
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "benchmarks/results", "**/*.inc"]
root_doc = "index"

# --- autodoc / autosummary / numpydoc
# The pages listing each package's names are written by _write_api_pages (at
# builder-inited, before autosummary reads them): name them explicitly, since
# on a clean checkout they do not exist yet when Sphinx scans the sources.
_API_PACKAGES = ("para_core", "para_memmap", "para_persist", "para_cache")
autosummary_generate = [f"api/generated/{name}.rst" for name in _API_PACKAGES]
autosummary_imported_members = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc's Parameters section already says it
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# No network at build time: intersphinx inventories are not fetched.
intersphinx_mapping: dict = {}

# --- doctest: every ``>>>`` example of the pages (and of the autodoc'ed
# docstrings) runs; each document starts in a fresh scratch folder.
doctest_global_setup = """
import os, tempfile
_doc_tmp = tempfile.TemporaryDirectory(prefix="para-doctest-")
_doc_cwd = os.getcwd()
os.chdir(_doc_tmp.name)
"""
# Folders are removed at exit, not after their document: a loky worker
# started in one (the cwd workers start in) may still be booting when a short
# example returns, and would fail to enter it (as with joblib).
doctest_global_cleanup = """
import atexit
os.chdir(_doc_cwd)
atexit.register(_doc_tmp.cleanup)
"""

# --- HTML
html_theme = "pydata_sphinx_theme"
html_title = "para"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
html_show_sourcelink = False

# Keep the module objects referenced so an import failure shows up here first.
_DOCUMENTED = (para_core, para_memmap, para_persist, para_cache, para_joblib)


# --- API reference: one page per package, listing exactly its ``__all__``, so
# the reference follows each public face without hand-kept lists.
def _write_api_pages(app) -> None:
    import os

    from sphinx.util import logging

    log = logging.getLogger("para-docs")

    out = os.path.join(os.path.dirname(__file__), "api", "generated")
    os.makedirs(out, exist_ok=True)
    for module in (para_core, para_memmap, para_persist, para_cache):
        name = module.__name__
        summary = (module.__doc__ or name).strip().splitlines()[0]
        lines = [
            name,
            "=" * len(name),
            "",
            f".. module:: {name}",
            "",
            summary,
            "",
            ".. autosummary::",
            "   :toctree: .",
            "",
        ]
        lines += [f"   {attr}" for attr in sorted(module.__all__)]
        _write_if_changed(os.path.join(out, f"{name}.rst"), "\n".join(lines) + "\n")

    # para_joblib re-exports objects documented above: link to them rather
    # than documenting each object twice.
    import importlib

    text = (
        "para_joblib\n===========\n\n.. module:: para_joblib\n\n"
        "joblib's public API: each name is the object of the package that owns "
        "it.\n\n" + _table(para_joblib, "para_joblib", log)
    )
    for sub in sorted(para_joblib._SUBMODULES):
        module = importlib.import_module(f"para_joblib.{sub}")
        title = f"``para_joblib.{sub}``"
        first = module.__doc__.strip().splitlines()[0]
        text += f"\n{title}\n{'-' * len(title)}\n\n{first}\n\n"
        text += _table(module, module.__name__, log)
    _write_if_changed(os.path.join(out, "para_joblib.rst"), text)


def _table(module, label: str, log) -> str:
    import types

    rows = []
    for attr in sorted(module.__all__):
        try:
            obj = getattr(module, attr)
        except Exception as exc:  # a package mid-way: report, build the rest
            log.warning("%s.%s cannot be documented: %s", label, attr, exc)
            continue
        table = getattr(module, "_TABLE", {})
        if isinstance(obj, types.ModuleType) or obj is None:
            # joblib.externals.loky is loky; parallel.mp is multiprocessing
            cell = f"the ``{obj.__name__}`` module" if obj is not None else "None"
        elif attr in table and not isinstance(obj, type | types.FunctionType):
            # Constants (strings) have no __module__: the table names the owner.
            cell = f":py:obj:`{table[attr][0].split('.')[0]}.{attr}`"
        elif isinstance(obj, str | tuple | int):
            cell = f"``{obj!r}``"
        elif obj.__module__.split(".")[0] == "para_joblib":
            # Defined by para_joblib itself (joblib's layout of a class).
            cell = (obj.__doc__ or attr).strip().splitlines()[0]
        else:
            cell = f":py:obj:`{obj.__module__.split('.')[0]}.{attr}`"
        rows.append(f"   * - ``{attr}``\n     - {cell}")
    header = ".. list-table::\n   :header-rows: 1\n\n   * - name\n     - object\n"
    return header + "\n".join(rows) + "\n"


def _write_if_changed(path: str, text: str) -> None:
    # Rewriting an unchanged file would make Sphinx rebuild every page.
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def setup(app):
    # Before autosummary's own builder-inited handler reads the pages.
    app.connect("builder-inited", _write_api_pages, priority=100)
    return {"parallel_read_safe": True}
