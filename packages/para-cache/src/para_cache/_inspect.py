"""Function introspection for Memory: identity, source code, call arguments."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import tokenize
import types
import warnings
from collections.abc import Callable
from itertools import islice
from typing import Any

from ._logger import pformat

_WIN_CHARS = {c: f"%{ord(c):02X}" for c in "<>!:\\"}


def _code_digest(code: types.CodeType) -> str:
    # Stable across processes (unlike hash(code), salted by PYTHONHASHSEED);
    # positions are left out so moving a function keeps its cache.
    parts = [
        code.co_name,
        code.co_code.hex(),
        getattr(code, "co_exceptiontable", b"").hex(),
        *code.co_names,
        *code.co_varnames,
        *code.co_cellvars,
        *code.co_freevars,
        repr(
            (
                code.co_argcount,
                code.co_posonlyargcount,
                code.co_kwonlyargcount,
                code.co_flags,
            )
        ),
    ]
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            parts.append(_code_digest(const))
        else:
            parts.append(repr(const))
    return hashlib.md5(
        "\n".join(parts).encode("utf-8", "replace"), usedforsecurity=False
    ).hexdigest()


def get_func_code(func: Callable) -> tuple[str, str | None, int]:
    """Return ``(source text, source file, first line)`` of ``func``.

    Reads the file afresh (no linecache) so an edited function is seen as
    changed; falls back to a digest of the byte code when no source exists.

    Parameters
    ----------
    func : callable
        The function whose code identifies its cache entries.

    Returns
    -------
    (str, str or None, int)
        Source text (or a digest of the byte code), its file, its first line.

    Examples
    --------
    >>> from para_cache import get_func_code
    >>> get_func_code(get_func_code)[0].startswith("def get_func_code")
    True
    """
    source_file = None
    try:
        code = func.__code__
        source_file = code.co_filename
        if not os.path.exists(source_file):
            source = "".join(inspect.getsourcelines(func)[0])
            line_no = 1
            match = re.match(r"<doctest (.*\.rst)\[(.*)\]>", source_file)
            if match is not None:
                source_file = f"<doctest {match.group(1)}>"
                line_no = int(match.group(2))
            return source, source_file, line_no
        first_line = code.co_firstlineno
        with tokenize.open(source_file) as f:
            lines = list(islice(f, first_line - 1, None))
        return "".join(inspect.getblock(lines)), source_file, first_line
    except Exception:
        if hasattr(func, "__code__"):
            return _code_digest(func.__code__), source_file, -1
        # ufuncs and other builtins: their repr is all we have.
        return repr(func), source_file, -1


def get_func_name(
    func: Callable, resolv_alias: bool = True, win_characters: bool = True
) -> tuple[list[str], str]:
    """Return ``(module path as a list, name)`` identifying ``func``.

    Functions of ``__main__`` get their file path folded into the module name
    so two scripts do not share entries; nested functions and methods add
    their enclosing qualified names.

    Parameters
    ----------
    func : callable
        The function to name.
    resolv_alias : bool, default=True
        Name a function bound to another name in its module by that name.
    win_characters : bool, default=True
        Escape characters that Windows forbids in folder names.

    Returns
    -------
    (list of str, str)
        The module path and the name, as Memory lays out its folders.

    Examples
    --------
    >>> from para_cache import get_func_name
    >>> get_func_name(get_func_name)
    (['para_cache', '_inspect'], 'get_func_name')
    """
    module = getattr(func, "__module__", None)
    if module is None and not hasattr(func, "__module__"):
        try:
            mod = inspect.getmodule(func)
            module = mod.__name__ if mod is not None else None
        except TypeError:
            module = getattr(type(func), "__module__", "unknown")
    if module is None:
        module = ""
    if module == "__main__":
        try:
            filename = os.path.abspath(inspect.getsourcefile(func))
        except Exception:
            filename = None
        if filename is not None:
            parts = filename.split(os.sep)
            if parts[-1].startswith("<ipython-input"):
                # Drop the cell number so re-running a cell keeps the cache.
                pieces = parts[-1].split("-")
                parts[-1] = "-".join(pieces[:2] + pieces[3:])
            elif len(parts) > 2 and parts[-2].startswith("ipykernel_"):
                parts[-2] = "ipykernel"
            filename = "-".join(parts)
            if filename.endswith(".py"):
                filename = filename[:-3]
            module = f"{module}-{filename}"
    modules = module.split(".")
    name = getattr(func, "__name__", "unknown")
    # ``resolv_alias`` is accepted for joblib compatibility; joblib 1.6 never
    # renames aliases on Python 3, and the on-disk layout must match its own.
    del resolv_alias
    qualname = getattr(func, "__qualname__", None)
    if qualname is not None and qualname != name:
        modules.extend(qualname.split(".")[:-1])
    if os.name == "nt" and win_characters:
        name = _clean_win(name)
        modules = [_clean_win(m) for m in modules]
    return modules, name


def _clean_win(text: str) -> str:
    for char, quoted in _WIN_CHARS.items():
        text = text.replace(char, quoted)
    return text


class ArgSpec:
    """Pre-digested signature of a function, built once per MemorizedFunc."""

    __slots__ = (
        "defaults",
        "is_method",
        "kwonly",
        "name",
        "names",
        "plain",
        "sig",
        "varargs",
        "varkw",
    )

    def __init__(self, func: Callable) -> None:
        self.plain = inspect.ismethod(func) or inspect.isfunction(func)
        self.is_method = inspect.ismethod(func)
        if not self.plain:
            return
        self.sig = inspect.signature(func)
        self.names: list[str] = []
        self.kwonly: list[str] = []
        self.varargs = None
        self.varkw = None
        self.defaults: dict[str, Any] = {}
        for p in self.sig.parameters.values():
            if p.kind is p.POSITIONAL_OR_KEYWORD:
                self.names.append(p.name)
            elif p.kind is p.KEYWORD_ONLY:
                self.kwonly.append(p.name)
            elif p.kind is p.VAR_POSITIONAL:
                self.varargs = p.name
            elif p.kind is p.VAR_KEYWORD:
                self.varkw = p.name
            if p.default is not p.empty:
                self.defaults[p.name] = p.default
        if self.is_method:
            self_name = next(iter(inspect.signature(func.__func__).parameters))
            self.names.insert(0, self_name)
        self.name = get_func_name(func, resolv_alias=False)[1]


class _LazyText:
    """``name(signature)``, rendered only when an error message needs it."""

    __slots__ = ("spec",)

    def __init__(self, spec: ArgSpec) -> None:
        self.spec = spec

    def __str__(self) -> str:
        return f"{self.spec.name}{self.spec.sig}"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _bad_call(
    what: str, sig_text: Any, spec: ArgSpec, args: Any, kwargs: dict
) -> ValueError:
    """The error for a call that does not fit the signature, as joblib words it."""
    return ValueError(
        f"{what} for {sig_text}:\n    {_call_text(spec.name, args, kwargs)} was called."
    )


def _call_text(name: str, args: Any, kwargs: dict) -> str:
    kw = ", ".join(f"{k}={v}" for k, v in kwargs.items())
    return f"{name}({repr(list(args))[1:-1]}, {kw})"


def filter_args(
    func: Callable,
    ignore_lst: Any,
    args: Any = (),
    kwargs: Any = None,
    spec: ArgSpec | None = None,
) -> dict[str, Any]:
    """Map a call onto the parameter names of ``func``, defaults applied.

    The result is what identifies a call: positional and keyword spellings
    give the same dict; ``ignore_lst`` names are dropped; extra positional
    arguments go under ``"*"`` and extra keywords under ``"**"``.

    Parameters
    ----------
    func : callable
        The function called.
    ignore_lst : list of str
        Parameter names to leave out.
    args : tuple, default=()
        Positional arguments of the call.
    kwargs : dict, optional
        Keyword arguments of the call.
    spec : ArgSpec, optional
        ``func``'s signature, when the caller has it already (faster).

    Returns
    -------
    dict
        Argument values by parameter name.

    Raises
    ------
    ValueError
        On a call that does not match the signature, an unknown name in
        ``ignore_lst``, or ``ignore_lst`` given as a single string.

    Examples
    --------
    >>> from para_cache import filter_args
    >>> def f(a, b=2, *args, **kw): ...
    >>> filter_args(f, ["b"], (1,), {"c": 3})
    {'a': 1, '*': [], '**': {'c': 3}}
    """
    kwargs = {} if kwargs is None else kwargs
    if isinstance(ignore_lst, str):
        raise ValueError(
            "ignore_lst must be a list of parameters to ignore "
            f"{ignore_lst} (type {type(ignore_lst)}) was given"
        )
    if spec is None:
        spec = ArgSpec(func)
    args = list(args)
    if not spec.plain:
        if ignore_lst:
            warnings.warn(
                f"Cannot inspect object {func}, ignore list will not work.",
                stacklevel=2,
            )
        return {"*": args, "**": kwargs}
    if spec.is_method:
        args.insert(0, func.__self__)
    sig_text = _LazyText(spec)
    out = dict(spec.defaults)
    names = spec.names
    for i, arg_name in enumerate(names):
        if i < len(args):
            if arg_name in kwargs:
                what = (
                    f"Argument {arg_name} was given both as positional and as keyword"
                )
                raise _bad_call(what, sig_text, spec, args, kwargs)
            out[arg_name] = args[i]
        elif arg_name in kwargs:
            out[arg_name] = kwargs[arg_name]
        elif arg_name not in out:
            raise _bad_call("Wrong number of arguments", sig_text, spec, args, kwargs)
    if len(args) > len(names):
        if spec.varargs is None:
            raise _bad_call("Too many arguments", sig_text, spec, args, kwargs)
        out["*"] = args[len(names) :]
    elif spec.varargs is not None:
        out["*"] = []
    for arg_name in spec.kwonly:
        if arg_name in kwargs:
            out[arg_name] = kwargs[arg_name]
        elif arg_name not in out:
            raise _bad_call("Wrong number of arguments", sig_text, spec, args, kwargs)
    extra = {k: v for k, v in kwargs.items() if k not in out}
    if spec.varkw is not None:
        out["**"] = extra
    elif extra:
        raise _bad_call("Too many keyword arguments", sig_text, spec, args, kwargs)
    for item in ignore_lst:
        if item not in out:
            raise ValueError(
                f"Ignore list: argument '{item}' is not defined for function {sig_text}"
            )
        del out[item]
    return out


def _format_arg(arg: Any) -> str:
    text = pformat(arg, indent=2)
    if len(text) > 1500:
        text = text[:700] + "..."
    return text


def format_signature(func: Callable, *args: Any, **kwargs: Any) -> tuple[str, str]:
    """Return ``(dotted path, "name(args)")`` for the verbose messages.

    Parameters
    ----------
    func : callable
        The function called.
    *args, **kwargs
        The arguments of the call, shown as their short ``repr``.

    Returns
    -------
    (str, str)
        The function's dotted path and the call as text.

    Examples
    --------
    >>> from para_cache import format_signature
    >>> format_signature(abs, -1)
    ('builtins.abs', 'abs(-1)')
    """
    modules, name = get_func_name(func)
    modules = [m for m in modules if m]
    path = ".".join([*modules, name]) if modules else name
    pieces = []
    previous = 0
    for arg in args:
        text = _format_arg(arg)
        if previous > 80:
            text = "\n" + text
        previous = len(text)
        pieces.append(text)
    pieces.extend(f"{k}={_format_arg(v)}" for k, v in kwargs.items())
    return path, f"{name}({', '.join(pieces)})"


def format_call(
    func: Callable, args: Any, kwargs: dict, object_name: str = "Memory"
) -> str:
    """Return the ``[Memory] Calling ...`` block printed on a cache miss.

    Parameters
    ----------
    func : callable
        The function called.
    args : tuple
        Its positional arguments.
    kwargs : dict
        Its keyword arguments.
    object_name : str, default="Memory"
        Name shown between brackets.

    Returns
    -------
    str
        A line of underscores, then the call.
    """
    path, signature = format_signature(func, *args, **kwargs)
    return f"{80 * '_'}\n[{object_name}] Calling {path}...\n{signature}"
