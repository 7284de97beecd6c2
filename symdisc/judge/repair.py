"""Repair of small-model replies before the gate: three mechanical fixes, each recorded.

* ``trim``: trailing lines that break the parse are dropped, one at a time from the end, while a
  ``def update`` remains (FunSearch trims a sample the same way): a reply cut off by its token
  limit, or ending in prose, keeps the lines that parse.
* ``after_return``: statements after ``update``'s top-level ``return`` are dropped (they never run).
* ``state_default``: a state key read by a plain ``state['k']`` before any write of it (in
  ``update``'s top-level statements, in order) reads ``state.get('k', 0.0)`` instead (zeros like
  ``param`` under ``buffers``), so the first call does not stop on a missing key.

Each change is a short string (``kind: detail``); the gate stores them with the candidate. The code
is unparsed only where a repair changed it. Nothing here judges the code: the gate still does.
"""

from __future__ import annotations

import ast
from typing import Optional

from symdisc.contract import SCALAR, UPDATE_NAME

MAX_TRIM_LINES = 12
SAVING = ("trim", "state_default")  # repairs without which the reply would have failed


def _update(tree: ast.Module) -> Optional[ast.FunctionDef]:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == UPDATE_NAME), None)


def _parses(code: str) -> Optional[ast.Module]:
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def trim(code: str) -> tuple[str, list[str]]:
    if _parses(code) is not None:
        return code, []
    lines = code.rstrip("\n").split("\n")
    for cut in range(1, min(MAX_TRIM_LINES, len(lines) - 1) + 1):
        shorter = "\n".join(lines[:-cut]) + "\n"
        tree = _parses(shorter)
        if tree is not None:
            fn = _update(tree)
            if fn is None:
                return code, []
            return shorter, [f"trim: dropped {cut} trailing line{'s' if cut > 1 else ''} that did not parse"]
    return code, []


def _after_return(fn: ast.FunctionDef) -> list[str]:
    for i, stmt in enumerate(fn.body):
        if isinstance(stmt, ast.Return) and i < len(fn.body) - 1:
            dropped = len(fn.body) - i - 1
            del fn.body[i + 1:]
            return [f"after_return: dropped {dropped} statement{'s' if dropped > 1 else ''} after the return"]
    return []


def _key(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "state" \
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return None


def _default(memory: str) -> ast.AST:
    return ast.parse("0.0" if memory == SCALAR else "torch.zeros_like(param)", mode="eval").body


class _Reads(ast.NodeTransformer):
    """Plain ``state['k']`` loads of keys not yet written become ``state.get('k', default)``."""

    def __init__(self, written: set, memory: str):
        self.written, self.memory, self.changed = written, memory, []

    def visit_Subscript(self, node):
        self.generic_visit(node)
        key = _key(node)
        if key is not None and isinstance(node.ctx, ast.Load) and key not in self.written:
            self.changed.append(key)
            return ast.Call(ast.Attribute(ast.Name("state", ast.Load()), "get", ast.Load()),
                            [ast.Constant(key), _default(self.memory)], [])
        return node


def _state_defaults(fn: ast.FunctionDef, memory: str) -> list[str]:
    written: set = set()
    changed: list = []
    for i, stmt in enumerate(fn.body):
        if isinstance(stmt, (ast.If, ast.For, ast.While, ast.With, ast.Try)):
            # a guarded read (`if 'k' in state:`) is the program's own business; what it writes counts
            written |= {_key(n) for n in ast.walk(stmt) if _key(n) is not None and isinstance(n.ctx, ast.Store)}
            continue
        if isinstance(stmt, ast.AugAssign) and _key(stmt.target) is not None and _key(stmt.target) not in written:
            key = _key(stmt.target)  # state['k'] += x reads k first
            stmt = fn.body[i] = ast.Assign([stmt.target], ast.BinOp(
                ast.Subscript(ast.Name("state", ast.Load()), ast.Constant(key), ast.Load()), stmt.op, stmt.value))
        value_nodes = [stmt.value] if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Return, ast.Expr)) \
            and getattr(stmt, "value", None) is not None else []
        for value in value_nodes:
            reads = _Reads(written, memory)
            stmt.value = reads.visit(value)
            changed += [k for k in reads.changed if k not in changed]
        for n in ast.walk(stmt):
            if _key(n) is not None and isinstance(n.ctx, ast.Store):
                written.add(_key(n))
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Attribute) \
                and stmt.value.func.attr == "setdefault" and stmt.value.args \
                and isinstance(stmt.value.args[0], ast.Constant):
            written.add(stmt.value.args[0].value)
    return [f"state_default: state[{k!r}] read before any write now reads 0 until written" for k in changed]


def repair(code: str, memory: str = SCALAR) -> tuple[str, list[str]]:
    """(repaired code, what changed). The code comes back unchanged where nothing applies."""
    code, changes = trim(code)
    tree = _parses(code)
    fn = _update(tree) if tree is not None else None
    if fn is None:
        return code, changes
    structural = _after_return(fn) + _state_defaults(fn, memory)
    if not structural:
        return code, changes
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", changes + structural


def saved(changes: list[str], passed_gate: bool) -> bool:
    """Did repair save this reply: it passed the gate after a repair without which it would fail."""
    return passed_gate and any(change.split(":")[0] in SAVING for change in changes)
