"""Numeric constants in candidate code: bounds, folding, and growth of powers and shifts.

A candidate may not build enormous numbers at compile or run time (``10**10**10`` is rejected,
never evaluated): they only serve to make huge shapes, loops or integers in the worker.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Optional

from symdisc.judge.nodes import GateReject
from symdisc.judge.policy import MAX_FLOAT, MAX_INT, MAX_POW_BITS, MAX_POW_EXPONENT, MAX_RANGE, MAX_STRING


def _check_constant(node: ast.Constant) -> None:
    value = node.value
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_INT:
            raise GateReject("too_large", f"integer constants are limited to {MAX_INT}", node)
    elif isinstance(value, float):
        if value != value or abs(value) > MAX_FLOAT:
            raise GateReject("too_large", "float constants must be finite and below 1e30", node)
    elif isinstance(value, str):
        if len(value) > MAX_STRING:
            raise GateReject("too_large", f"string constants are limited to {MAX_STRING} characters", node)
    elif isinstance(value, (bytes, complex)) or value is Ellipsis:
        raise GateReject("forbidden_syntax", f"{type(value).__name__} constants are not allowed", node)


def _constant_number(node: ast.AST) -> Optional[float]:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _constant_number(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    return None


def _constant_range_length(node: ast.AST) -> Optional[int]:
    """The length of `range(<constants>)` when it is small, else None."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"):
        return None
    if node.keywords or not 1 <= len(node.args) <= 3:
        return None
    values = [_constant_number(a) for a in node.args]
    if any(v is None or not isinstance(v, int) for v in values):
        return None
    try:
        n = len(range(*values))
    except (ValueError, OverflowError):
        return None
    return n if n <= MAX_RANGE else None


_FOLD_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
             ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
             ast.Pow: operator.pow, ast.LShift: operator.lshift}


def _fold_constant(node: ast.AST):
    """The value of an expression made only of numeric constants, else None.

    Powers and shifts are checked by _check_growth *before* they are computed, so folding never
    builds a huge number (``10**10**10`` is rejected, not evaluated)."""
    value = _constant_number(node)
    if value is not None:
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _fold_constant(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp) and type(node.op) in _FOLD_OPS:
        if isinstance(node.op, (ast.Pow, ast.LShift)):
            _check_growth(node)
        left, right = _fold_constant(node.left), _fold_constant(node.right)
        if left is None or right is None:
            return None
        try:
            value = _FOLD_OPS[type(node.op)](left, right)
        except (ArithmeticError, ValueError, TypeError):
            return None
        return value if isinstance(value, (int, float)) else None  # (-8) ** 0.5 is complex
    return None


def _check_growth(node: ast.BinOp, where: Optional[ast.AST] = None) -> None:
    """Reject powers and shifts of constants that build enormous numbers.

    Hole found by the hostile tests: only a literal exponent was bounded, so ``10**10**10`` (the
    exponent is itself a power) passed the gate, and CPython does not fold it at compile time:
    the worker spent its whole time limit computing a 33-billion-bit integer. The exponent (or
    shift count) is now folded when it is made of constants, and so is the result's size."""
    where = where or node
    exponent = _fold_constant(node.right)
    if exponent is None:
        return  # a run-time exponent such as BETA ** t: bounded by the sandbox's limits
    if isinstance(node.op, ast.LShift):
        if abs(exponent) > MAX_POW_EXPONENT:
            raise GateReject("too_large", f"shift counts are limited to {MAX_POW_EXPONENT}", where)
        return
    if abs(exponent) > MAX_POW_EXPONENT:
        raise GateReject("too_large", f"exponents are limited to {MAX_POW_EXPONENT}", where)
    base = _fold_constant(node.left)
    if base is not None and exponent > 0 and abs(base) > 1:
        if exponent * math.log2(abs(base)) > MAX_POW_BITS:
            raise GateReject("too_large", "this power of constants is beyond the float range", where)


def _is_numeric_expression(node: ast.AST) -> bool:
    if _constant_number(node) is not None:
        return True
    if isinstance(node, ast.BinOp) and not isinstance(node.op, (ast.MatMult,)):
        return _is_numeric_expression(node.left) and _is_numeric_expression(node.right)
    return False

