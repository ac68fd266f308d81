"""Hatch build hook: compile the optional C accelerator ``para_core._speedups``.

para-core is complete without it. When the compilation fails (no compiler,
no Python headers) the wheel is built pure Python with a warning, and
``para_core`` runs the same logic in Python. ``PARA_CORE_PURE_PYTHON=1``
skips the compilation on purpose (the universal wheel of a release).

Regular wheels get the compiled module inside; editable installs get it
next to the sources, where the editable path finds it (see :func:`place`).
"""

from __future__ import annotations

import contextlib
import filecmp
import os
import shutil
import tempfile
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_SOURCE = os.path.join("src", "para_core", "_speedups.c")


def place(built: str, target: str) -> bool:
    """Put a copy of the file ``built`` at ``target``; True if it changed.

    ``target`` is the extension module of an editable install, which running
    processes (a test session, a server) have mapped. Writing into that file
    (``shutil.copyfile`` truncates and rewrites the same inode) changes their
    code pages under them: each such process dies of SIGBUS or SIGSEGV at its
    next call into the module, every time an environment of the same
    checkout is built. So the copy is written beside the target and renamed
    over it: the processes keep the old inode, new imports get the new file.
    An identical file is left as it is.
    """
    if os.path.exists(target) and filecmp.cmp(built, target, shallow=False):
        return False
    folder, name = os.path.split(target)
    fd, partial = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, open(built, "rb") as source:
            shutil.copyfileobj(source, out)
        shutil.copymode(built, partial)
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return True


class SpeedupsBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        if os.environ.get("PARA_CORE_PURE_PYTHON", "0") not in ("", "0"):
            return
        self._tmp = tempfile.mkdtemp(prefix="para-core-build-")
        try:
            built = self._compile()
        except Exception as exc:  # a compiler error is an exit: SystemExit too
            self.app.display_warning(
                f"para-core: the C accelerator was not built ({exc!r}); "
                "the package works without it, only slower."
            )
            return
        except SystemExit as exc:
            self.app.display_warning(
                f"para-core: the C accelerator was not built (compiler exit "
                f"{exc.code}); the package works without it, only slower."
            )
            return
        name = os.path.basename(built)
        if version == "editable":
            place(built, os.path.join(self.root, "src", "para_core", name))
        else:
            build_data["force_include"][built] = f"para_core/{name}"
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact: str) -> None:
        tmp = getattr(self, "_tmp", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def _compile(self) -> str:
        # setuptools knows every platform's compiler and flags.
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        ext = Extension("para_core._speedups", [os.path.join(self.root, _SOURCE)])
        cmd = build_ext(Distribution({"name": "para-core", "ext_modules": [ext]}))
        cmd.build_lib = self._tmp
        cmd.build_temp = os.path.join(self._tmp, "temp")
        cmd.ensure_finalized()
        cmd.run()
        return cmd.get_ext_fullpath(ext.name)
