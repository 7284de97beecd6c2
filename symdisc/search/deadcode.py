"""Dead-code removal: the statements of ``update`` that never reach its return value.

A statement is live when it binds a name a later live statement (or the return) reads, or writes a
state key that some live statement reads (a key read in one call was written in an earlier one, so
the key set is order-free and found by iterating to a fixed point). Compound statements (``if``,
``for``) and bare expressions are kept as they are. Two programs that differ only in dead
statements are one program: the search hashes the live part.
"""

from __future__ import annotations

import ast
from typing import Optional

from symdisc.contract import UPDATE_NAME


def update_def(tree: ast.Module) -> Optional[ast.FunctionDef]:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == UPDATE_NAME), None)


def state_key(node: ast.AST) -> Optional[str]:
    """The constant key of ``state['k']`` or ``state.get('k', ...)``/``setdefault``, else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "state":
        key = node.slice
        return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "setdefault")
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "state" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return node.args[0].value
    return None


def reads(stmt: ast.AST) -> tuple[set, set, bool]:
    """(names read, state keys read, reads state with a computed key) of one statement."""
    names, keys, any_key = set(), set(), False
    if isinstance(stmt, ast.AugAssign):  # x += y reads x (and state['k'] += y reads k)
        if isinstance(stmt.target, ast.Name):
            names.add(stmt.target.id)
        elif state_key(stmt.target) is not None:
            keys.add(state_key(stmt.target))
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        key = state_key(node)
        loaded = not (isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store))
        if key is not None and loaded:
            keys.add(key)
        elif loaded and isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) \
                and node.value.id == "state":
            any_key = True
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "state" \
                and node.attr not in ("get", "setdefault"):
            any_key = True  # state.keys(), values(), items(), update(), pop(): keep every write
    return names, keys, any_key


def _binds(stmt: ast.AST) -> tuple[set, set, bool]:
    """(names bound, state keys written, writes state with a computed key)."""
    names, keys, any_key = set(), set(), False
    targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
    for target in targets:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "state":
                key = state_key(node)
                if key is None:
                    any_key = True
                else:
                    keys.add(key)
    return names, keys, any_key


def live_mask(body: list) -> list[bool]:
    """For each statement of a function body: does it reach the return value?"""
    simple = (ast.Assign, ast.AugAssign, ast.AnnAssign)
    keys: set = set()
    any_key = False
    while True:
        live = [False] * len(body)
        needed: set = set()
        new_keys, new_any = set(keys), any_key
        for i in range(len(body) - 1, -1, -1):
            stmt = body[i]
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a docstring or stray string
            if isinstance(stmt, simple) and not (isinstance(stmt, ast.AnnAssign) and stmt.value is None):
                names, written, computed = _binds(stmt)
                if not (names & needed or written & keys or (written and any_key) or computed):
                    continue
                if isinstance(stmt, ast.Assign) or isinstance(stmt, ast.AnnAssign):
                    needed -= names  # rebound here: earlier bindings are not what later lines read
            live[i] = True
            got, read_keys, read_any = reads(stmt)
            needed |= got
            new_keys |= read_keys
            new_any = new_any or read_any
        if new_keys == keys and new_any == any_key:
            return live
        keys, any_key = new_keys, new_any


def prune(code: str) -> str:
    """``code`` without the statements of ``update`` that never reach its return value."""
    tree = ast.parse(code)
    fn = update_def(tree)
    if fn is None:
        return code
    mask = live_mask(fn.body)
    if all(mask):
        return code
    fn.body = [s for s, keep in zip(fn.body, mask) if keep] or fn.body
    return ast.unparse(tree) + "\n"
