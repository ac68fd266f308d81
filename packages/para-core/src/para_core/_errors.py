"""Errors raised by the engine, and the parsing of size and n_jobs arguments."""

from __future__ import annotations

import ast
import contextlib
import math
import multiprocessing
import numbers
import operator
import os
from typing import Any

from ._mp import TerminatedWorkerError

__all__ = [
    "ParallelTimeoutError",
    "WorkerTerminatedError",
    "drop_retrieval_frames",
    "eval_expr",
    "memstr_to_bytes",
    "release_frames",
]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class WorkerTerminatedError(TerminatedWorkerError):
    """A worker process died (signal, ``os._exit``, out of memory) mid-batch.

    Subclass of loky's ``TerminatedWorkerError``; the message names the tasks
    that were running and the exit code or signal reported by loky.
    """


class ParallelTimeoutError(multiprocessing.TimeoutError, TimeoutError):
    """``Parallel(timeout=...)`` expired while the caller waited for a batch.

    A ``multiprocessing.TimeoutError``, the class joblib raises, so that
    ``except multiprocessing.TimeoutError`` written for joblib catches it; and
    the builtin ``TimeoutError`` too, which ``concurrent.futures`` and
    ``asyncio`` raise since Python 3.11 (and para raised before), so that
    ``except TimeoutError`` catches it as well. The price: being a builtin
    ``TimeoutError`` makes it an ``OSError``, which joblib's is not.
    """


_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}


def memstr_to_bytes(text: Any) -> int:
    """Convert ``"1M"``, ``"100K"``, ``"1G"`` (binary units) to bytes.

    Raises
    ------
    ValueError
        The text is not a number followed by K, M or G.
    """
    value = str(text)
    unit = _UNITS.get(value[-1:].upper()) if value else None
    try:
        if unit is None:
            raise ValueError(value)
        return int(float(value[:-1]) * unit)
    except ValueError:
        raise ValueError(
            f"Invalid literal for size give: {text!r} (type {type(text)}) should "
            "be alike '10G', '500M', '50K'."
        ) from None


def parse_max_nbytes(value: Any) -> int | None:
    """``max_nbytes`` as bytes: a number (int or float, as joblib's own
    ``1e6``), None, or a ``"1M"``-style string.

    A fractional float is rounded up: arrays larger than it are shared, as
    joblib compares; infinity means never, as None.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return memstr_to_bytes(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            "max_nbytes must be a number of bytes (int or float), None or a "
            f"size string like '1M', got {value!r}"
        )
    if not value >= 0:  # NaN too
        raise ValueError(f"max_nbytes must be >= 0, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if math.isinf(value):
        return None
    return math.ceil(value)


_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def eval_expr(expr: str, names: dict[str, Any] | None = None) -> Any:
    """Evaluate an arithmetic expression safely (numbers, names, + - * / ** %).

    Raises
    ------
    ValueError
        Anything else (calls, attributes, unknown names...).
    """
    names = names or {}
    if len(expr) > 30:  # ast.parse can crash on huge inputs
        raise ValueError(
            f"Expression {expr[:30]!r}... is too long. Max length is 30, "
            f"got {len(expr)}."
        )

    def visit(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return visit(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.Name) and node.id in names:
            return names[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            left, right = visit(node.left), visit(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError(expr)
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](visit(node.operand))
        raise ValueError(expr)

    try:
        return visit(ast.parse(expr, mode="eval"))
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError):
        raise ValueError(
            f"{expr!r} is not a valid or supported arithmetic expression."
        ) from None


def release_frames(exc: BaseException) -> None:
    """Drop the local variables of para-core's finished frames in ``exc``'s
    tracebacks (and those of its cause and context).

    A raised exception keeps every frame it went through, and the engine's
    frames hold batches, futures and the exception itself: without this, a
    failed call's arguments stay alive in a reference cycle until the garbage
    collector runs (or while loky still holds the cancelled futures). The
    traceback the user sees is unchanged (a cleared frame keeps its code and
    line); the user's own frames are left as they are. Frames still running
    (the caller of this function and above) cannot be cleared and are skipped.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        todo += (error.__cause__, error.__context__)
        tb = error.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_filename.startswith(_PACKAGE_DIR):
                with contextlib.suppress(RuntimeError):  # still executing
                    frame.clear()
            tb = tb.tb_next


def drop_retrieval_frames(exc: BaseException, here: Any) -> None:
    """Cut from ``exc``'s traceback the frames of its retrieval in ``here``.

    A batch's exception re-raised by ``future.result()`` in a completion
    callback carries the callback's frames, whose callers (``f_back``) hold
    the future, which holds the exception: a reference cycle keeping the
    failed call's arguments alive until the garbage collector runs. What the
    user needs, where the task failed, is in the frames after them.
    """
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        while frame is not None and frame is not here:
            frame = frame.f_back
        if frame is None:  # raised outside this callback: the task's frames
            exc.__traceback__ = tb
            return
        tb = tb.tb_next
