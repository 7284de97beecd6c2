"""The static gate: an AST allow-list verdict on candidate source, in well under a millisecond.

The allow-lists live in ``policy.py`` (the sandbox's runtime guards read the same tables), the
scalar-state proof in ``scalar_state.py``, deduplication hashing in ``normalize.py``.

What a candidate module may contain, and why each is safe:
- exactly one ``def update(grad, param, state, lr, t)`` without defaults or decorators;
- helper functions at module level, without decorators and with numeric defaults only: they see
  no ``state`` (``state`` may not be passed around), cannot recurse, and follow the same rules;
- numeric constants (``BETA = 0.9``): immutable, so they cannot carry state between calls;
- ``import torch`` / ``import math``: no-ops, the names are provided; any other import is rejected;
- a module docstring.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field
from typing import Optional

from symdisc.contract import MEMORY_CLASSES, SCALAR, UPDATE_ARGS, UPDATE_NAME, Verdict, reject
from symdisc.judge.extract import extract_code
from symdisc.judge.module_checks import (ANNOTATION_NAMES, _check_cycles, _check_helper_signature,
                                         _check_signature, _sweep)
from symdisc.judge.nodes import GateReject, _child_fields, _is_docstring, _is_state, _target_names, _walk
from symdisc.judge.normalize import canonical_hash, strip_imports
from symdisc.judge.constants import (_check_constant, _check_growth, _constant_range_length, _fold_constant,
                                     _is_numeric_expression)
from symdisc.judge.policy import (ATTRS, CAPPED_FUNCS, ESCAPE_BUILTINS, FORMAT_ATTRS, MATH_NAMES, MAX_CODE_CHARS,
                                  MAX_LOOP_ITERATIONS, MAX_MATRIX_SIDE, MAX_NODES, MAX_RANGE, MODULES, SAFE_BUILTINS, STATE_METHODS,
                                  TORCH_CONSTANTS, TORCH_FUNCS, TORCH_SUBMODULES, _FORBIDDEN_NODES,
                                  _FORBIDDEN_NODES_REASON)
from symdisc.judge.scalar_state import ScalarStateInference


@dataclass
class GateResult:
    verdict: Verdict
    code: Optional[str] = None  # the extracted source
    normalized: Optional[str] = None  # imports and docstrings stripped; what the sandbox runs
    ast_hash: Optional[str] = None  # identical for programs that differ only in names/format
    helpers: list = field(default_factory=list)
    repairs: list = field(default_factory=list)  # what repair.py changed before judging ("kind: detail")

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict.as_dict(),
            "code": self.code,
            "normalized": self.normalized,
            "ast_hash": self.ast_hash,
            "repairs": self.repairs,
        }


class _FunctionChecker(ScalarStateInference, ast.NodeVisitor):
    """Checks one function body; collects the names it calls for the recursion check."""

    def __init__(self, fn: ast.FunctionDef, module_names: set, helper_names: set, memory: str,
                 helper_kinds: dict, nodes: Optional[list] = None):
        self.fn = fn
        self.memory = memory
        self.module_names = module_names
        self.helper_names = helper_names
        self.helper_kinds = helper_kinds
        self.params = [a.arg for a in fn.args.args]
        self.is_update = fn.name == UPDATE_NAME
        self.assigned: dict[str, list[ast.AST]] = {}
        self.calls: set[str] = set()
        self.loop_depth_product = 1
        self.nodes = nodes if nodes is not None else _walk(fn)  # walked once per check

    # -- entry -----------------------------------------------------------------------------
    def run(self) -> None:
        self._collect_assignments()
        allowed = set(self.params) | set(self.assigned) | self.module_names | self.helper_names
        allowed |= SAFE_BUILTINS | MODULES
        self.allowed_names = allowed
        # Annotations are never executed (the sandbox compiles without them), but a forbidden
        # reference is refused wherever it stands: the gate judges the whole text.
        for arg in self.fn.args.args:
            if arg.annotation is not None:
                self._check_annotation(arg.annotation)
        if self.fn.returns is not None:
            self._check_annotation(self.fn.returns)
        for i, stmt in enumerate(self.fn.body):
            if i == 0 and _is_docstring(stmt):
                continue
            self.visit(stmt)
        if self.is_update and self.memory == SCALAR:
            self._check_scalar_state()
        if not any(isinstance(n, ast.Return) and n.value is not None for n in self.nodes):
            raise GateReject("no_update", f"{self.fn.name} never returns a value", self.fn)

    def _collect_assignments(self) -> None:
        for node in self.nodes:
            kind = type(node)
            if kind is ast.Assign:
                targets = node.targets
            elif kind is ast.AugAssign or kind is ast.AnnAssign or kind is ast.For:
                targets = [node.target]
            else:
                continue
            for target in targets:
                for name in _target_names(target):
                    self.assigned.setdefault(name, []).append(node)

    # -- statements --------------------------------------------------------------------------
    _dispatch: dict = {}  # node type -> unbound visit method, filled on first sight

    def visit(self, node: ast.AST) -> None:
        # ast.NodeVisitor.visit builds the method name and looks it up for every node; a
        # per-type table does that once per node type.
        kind = type(node)
        method = self._dispatch.get(kind)
        if method is None:
            method = self._dispatch[kind] = getattr(type(self), "visit_" + kind.__name__,
                                                    _FunctionChecker.generic_visit)
        method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, _FORBIDDEN_NODES):
            reason, message = _FORBIDDEN_NODES_REASON.get(type(node), (
                "forbidden_syntax", f"`{type(node).__name__}` is not allowed in a candidate"))
            raise GateReject(reason, message, node)
        for name in _child_fields(type(node)):
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                self.visit(value)
            elif type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)

    def visit_FunctionDef(self, node):
        raise GateReject("forbidden_syntax", "nested functions are not allowed (closures can hold state)", node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        raise GateReject("forbidden_syntax", "lambdas are not allowed (closures can hold state)", node)

    def visit_Import(self, node):
        raise GateReject("import", "imports are not allowed; torch and math are already available", node)

    visit_ImportFrom = visit_Import

    def visit_Global(self, node):
        raise GateReject("global", "`global`/`nonlocal` are not allowed: state lives in `state`", node)

    visit_Nonlocal = visit_Global

    def visit_While(self, node):
        raise GateReject("loop", "`while` loops are not allowed; use `for i in range(N)` with N <= %d" % MAX_RANGE, node)

    def visit_For(self, node):
        n = _constant_range_length(node.iter)
        if n is None:
            raise GateReject("loop", "loops must be `for i in range(N)` with a constant N <= %d" % MAX_RANGE, node)
        if not isinstance(node.target, ast.Name):
            raise GateReject("loop", "the loop variable must be a plain name", node)
        self._check_target(node.target, node)
        if node.orelse:
            raise GateReject("forbidden_syntax", "`for ... else` is not allowed", node)
        outer = self.loop_depth_product
        self.loop_depth_product *= max(n, 1)
        if self.loop_depth_product > MAX_LOOP_ITERATIONS:
            raise GateReject("loop", f"nested loops run more than {MAX_LOOP_ITERATIONS} iterations", node)
        for stmt in node.body:
            self.visit(stmt)
        self.loop_depth_product = outer

    def visit_Assign(self, node):
        for target in node.targets:
            self._check_target(target, node)
        self.visit(node.value)

    def visit_AugAssign(self, node):
        self._check_target(node.target, node)
        self.visit(node.value)

    def visit_AnnAssign(self, node):
        if node.value is None:
            raise GateReject("forbidden_syntax", "bare annotations are not allowed", node)
        self._check_target(node.target, node)
        self._check_annotation(node.annotation)
        self.visit(node.value)

    def _check_annotation(self, node: ast.AST) -> None:
        """An annotation may only name a type: torch.Tensor, float, int, bool or dict."""
        if isinstance(node, ast.Name) and node.id in ANNOTATION_NAMES:
            return
        if (isinstance(node, ast.Attribute) and node.attr == "Tensor" and isinstance(node.value, ast.Name)
                and node.value.id == "torch"):
            return
        self.visit(node)  # the precise reason for a forbidden reference (torch.os, __import__, ...)
        raise GateReject("forbidden_syntax", "annotations may only name torch.Tensor, float, int, bool or dict",
                         node)

    def _check_target(self, target: ast.AST, stmt: ast.AST) -> None:
        if isinstance(target, ast.Name):
            if target.id.startswith("_"):
                raise GateReject("dunder", f"name `{target.id}` may not start with an underscore", stmt)
            if target.id in ("state",) and self.is_update:
                raise GateReject("stateful", "`state` may not be rebound", stmt)
            if target.id in MODULES or target.id in SAFE_BUILTINS:
                raise GateReject("forbidden_name", f"`{target.id}` may not be rebound", stmt)
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._check_target(elt, stmt)
            return
        if isinstance(target, ast.Attribute):
            raise GateReject("attr_assign", "assigning attributes is not allowed (it can smuggle state)", stmt)
        if isinstance(target, ast.Subscript):
            if _is_state(target.value):
                self.visit(target.slice)
                return
            raise GateReject("inplace", "item assignment changes a tensor in place; build a new tensor with torch.where", stmt)
        raise GateReject("forbidden_syntax", f"cannot assign to `{type(target).__name__}`", stmt)

    # -- expressions ---------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name.startswith("_"):
            raise GateReject("dunder", f"name `{name}` may not start with an underscore", node)
        if name == "state" and self.is_update:
            # Legitimate uses (state[k], state.get(...), k in state, len(state)) never get here.
            raise GateReject("stateful", "`state` may only be indexed, used through its methods, "
                             "tested with `in` or measured with len()", node)
        if name in ESCAPE_BUILTINS:
            raise GateReject("forbidden_name", f"`{name}` is not allowed", node)
        if name not in self.allowed_names:
            if not hasattr(builtins, name):
                # Small models copy half a program: a name from a line they left out (`c1`, `s`).
                raise GateReject("forbidden_name", f"name `{name}` is used but never assigned: write the "
                                 f"whole function and assign `{name}` before this line, or do not use it", node)
            raise GateReject("forbidden_name", f"name `{name}` is not defined or not allowed "
                             "(only torch, math and abs/min/max/float/int/bool/round/range/len)", node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        if attr.startswith("_"):
            raise GateReject("dunder", f"attribute `.{attr}` is not allowed", node)
        base = node.value
        if isinstance(base, ast.Name) and base.id == "torch":
            if attr in TORCH_FUNCS or attr in TORCH_CONSTANTS or attr in TORCH_SUBMODULES:
                return
            raise GateReject("forbidden_attr", f"`torch.{attr}` is not in the allow-list", node)
        if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "torch":
            allowed = TORCH_SUBMODULES.get(base.attr)
            if allowed is None:
                raise GateReject("forbidden_attr", f"`torch.{base.attr}` is not in the allow-list", node)
            if attr not in allowed:
                raise GateReject("forbidden_attr", f"`torch.{base.attr}.{attr}` is not in the allow-list", node)
            return
        if isinstance(base, ast.Name) and base.id == "math":
            if attr in MATH_NAMES:
                return
            raise GateReject("forbidden_attr", f"`math.{attr}` is not in the allow-list", node)
        if isinstance(base, ast.Constant) and isinstance(base.value, str):
            raise GateReject("format", "methods on strings are not allowed", node)
        if attr.endswith("_"):
            raise GateReject("inplace", f"`.{attr}` changes a tensor in place; use `.{attr[:-1]}` and return the step", node)
        if attr in FORMAT_ATTRS:
            raise GateReject("format", f"`.{attr}` is not allowed", node)
        if attr not in ATTRS:
            raise GateReject("forbidden_attr", f"`.{attr}` is not in the allow-list", node)
        if isinstance(base, ast.Name) and base.id == "state":
            if attr not in STATE_METHODS:
                raise GateReject("forbidden_attr", f"`state.{attr}` is not allowed", node)
            return
        self.visit(base)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id in self.helper_names:
                self.calls.add(func.id)
            elif func.id == UPDATE_NAME or func.id == self.fn.name:
                self.calls.add(func.id)
            elif func.id not in SAFE_BUILTINS:
                self.visit_Name(func)  # gives the precise reason
                raise GateReject("forbidden_name", f"`{func.id}` cannot be called", node)
            if func.id == "range" and _constant_range_length(node) is None:
                raise GateReject("loop", "range() needs constant arguments with at most %d steps" % MAX_RANGE, node)
        elif isinstance(func, ast.Attribute):
            self.visit(func)
            if isinstance(func.value, ast.Name) and func.value.id == "torch" and func.attr in CAPPED_FUNCS:
                _check_matrix_sides(node)
        else:
            raise GateReject("forbidden_syntax", "only named functions and methods may be called", node)
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise GateReject("forbidden_syntax", "`*args` in calls is not allowed", node)
            if _is_state(arg):
                if isinstance(func, ast.Name) and func.id == "len":
                    continue
                raise GateReject("stateful", "`state` may not be passed to a function", node)
            self.visit(arg)
        for kw in node.keywords:
            if kw.arg is None:
                raise GateReject("forbidden_syntax", "`**kwargs` in calls is not allowed", node)
            if kw.arg == "out":
                raise GateReject("inplace", "`out=` writes into an existing tensor; return a new one", node)
            if _is_state(kw.value):
                raise GateReject("stateful", "`state` may not be passed to a function", node)
            self.visit(kw.value)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if not _is_state(node.value):
            self.visit(node.value)
        self.visit(node.slice)

    def visit_Compare(self, node: ast.Compare) -> None:
        for operand in [node.left, *node.comparators]:
            if not _is_state(operand):
                self.visit(operand)

    def visit_Constant(self, node: ast.Constant) -> None:
        _check_constant(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            raise GateReject("format", "`%` string formatting is not allowed", node)
        if isinstance(node.op, (ast.Pow, ast.LShift)):
            _check_growth(node)
        if isinstance(node.op, ast.Mult):
            for side in (node.left, node.right):
                if isinstance(side, (ast.List, ast.Tuple)) or (
                        isinstance(side, ast.Constant) and isinstance(side.value, str)):
                    raise GateReject("too_large", "repeating sequences or strings with `*` is not allowed", node)
        self.generic_visit(node)

    def visit_Dict(self, node):
        for key, value in zip(node.keys, node.values):
            if key is None:
                raise GateReject("forbidden_syntax", "`**` in dict displays is not allowed", node)
            self.visit(key)
            if _is_state(value):
                raise GateReject("stateful", "`state` may not be stored in a container", node)
            self.visit(value)

    def visit_List(self, node):
        for elt in node.elts:
            if isinstance(elt, ast.Starred) or _is_state(elt):
                raise GateReject("stateful" if _is_state(elt) else "forbidden_syntax",
                                 "containers may hold only plain values", node)
            self.visit(elt)

    visit_Tuple = visit_List

    def visit_Return(self, node):
        if node.value is not None and _is_state(node.value):
            raise GateReject("stateful", "`state` may not be returned", node)
        if node.value is not None:
            self.visit(node.value)

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a stray string statement is a comment
        if _is_state(node.value):
            return
        self.visit(node.value)


def _check_matrix_sides(node: ast.Call) -> None:
    """torch.eye(n, m) and torch.diag(v) allocate a shape from numbers: a constant side beyond
    MAX_MATRIX_SIDE is refused here, any side at run time (restricted.py). Take sides from a
    tensor's shape (``torch.eye(x.shape[0])``)."""
    for arg in [*node.args, *(kw.value for kw in node.keywords if kw.arg in ("n", "m"))]:
        value = _fold_constant(arg)
        if value is not None and abs(value) > MAX_MATRIX_SIDE:
            raise GateReject("too_large", f"matrices built from numbers are limited to {MAX_MATRIX_SIDE} "
                             f"x {MAX_MATRIX_SIDE}; take the size from a tensor's shape", node)


def check_code(code: str, memory: str = SCALAR) -> GateResult:
    """Judge extracted source code. Never raises for any input string."""
    if memory not in MEMORY_CLASSES:
        raise ValueError(f"unknown memory class {memory!r}")
    try:
        return _check_code(code, memory)
    except GateReject as rej:
        return GateResult(reject("gate", rej.reason, rej.message, rej.line), code=code)
    except (RecursionError, MemoryError):
        return GateResult(reject("gate", "too_large", "the code is nested too deeply"), code=code)


def _check_code(code: str, memory: str) -> GateResult:
    if len(code) > MAX_CODE_CHARS:
        raise GateReject("too_large", f"the code is longer than {MAX_CODE_CHARS} characters")
    try:
        tree = ast.parse(code, mode="exec")
    except SyntaxError as exc:
        msg = exc.msg or "invalid syntax"
        last = code.rstrip("\n").count("\n") + 1
        if exc.lineno and exc.lineno >= last and ("EOF" in msg or "expected an indented block" in msg or "was never closed" in msg):
            msg += " (the code looks truncated)"
        rej = GateReject("syntax", msg)
        rej.line = exc.lineno
        raise rej
    except ValueError as exc:  # e.g. "source code string cannot contain null bytes"
        raise GateReject("syntax", str(exc))
    # One walk per top-level statement, shared with the function checkers below.
    walks = {id(stmt): _walk(stmt) for stmt in tree.body}
    all_nodes = [tree] + [n for stmt in tree.body for n in walks[id(stmt)]]
    node_count = len(all_nodes)
    if node_count > MAX_NODES:
        raise GateReject("too_large", f"the code has {node_count} syntax nodes (limit {MAX_NODES})")

    functions: dict[str, ast.FunctionDef] = {}
    constants: set[str] = set()
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.FunctionDef):
            if stmt.decorator_list:
                raise GateReject("forbidden_syntax", "decorators are not allowed", stmt)
            if stmt.name.startswith("_"):
                raise GateReject("dunder", f"function name `{stmt.name}` may not start with an underscore", stmt)
            if stmt.name in functions:
                raise GateReject("redefined", f"`{stmt.name}` is defined twice", stmt)
            if stmt.name in MODULES or stmt.name in SAFE_BUILTINS or stmt.name in ESCAPE_BUILTINS:
                raise GateReject("forbidden_name", f"`{stmt.name}` may not be redefined", stmt)
            functions[stmt.name] = stmt
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name not in MODULES or (alias.asname and alias.asname != alias.name):
                    raise GateReject("import", f"`import {alias.name}` is not allowed; "
                                     "only torch and math exist, and they are already imported", stmt)
        elif isinstance(stmt, ast.ImportFrom):
            raise GateReject("import", "`from ... import` is not allowed; use torch.X and math.X", stmt)
        elif i == 0 and _is_docstring(stmt):
            continue
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            if name.startswith("_"):
                raise GateReject("dunder", f"name `{name}` may not start with an underscore", stmt)
            if name in MODULES or name in SAFE_BUILTINS or name in UPDATE_ARGS:
                raise GateReject("global", f"module-level `{name}` shadows a reserved name", stmt)
            if not _is_numeric_expression(stmt.value):
                raise GateReject("global", "module-level assignments may only bind numeric constants", stmt)
            for sub in _walk(stmt.value):
                if isinstance(sub, ast.Constant):
                    _check_constant(sub)
                if isinstance(sub, ast.BinOp) and isinstance(sub.op, (ast.Pow, ast.LShift)):
                    _check_growth(sub, stmt)
            constants.add(name)
        elif isinstance(stmt, ast.If) and "__name__" in ast.dump(stmt.test):
            raise GateReject("global", "remove the `if __name__ == ...` block: only the function is needed", stmt)
        else:
            raise GateReject("global", "only functions, numeric constants and `import torch`/`import math` "
                             "may stand at module level (no example usage or prints)", stmt)

    if UPDATE_NAME not in functions:
        raise GateReject("no_update", f"define `def update({', '.join(UPDATE_ARGS)}):`")
    _check_signature(functions[UPDATE_NAME])
    helpers = [name for name in functions if name != UPDATE_NAME]
    for name in helpers:
        _check_helper_signature(functions[name])
    clash = constants & set(functions)
    if clash:
        raise GateReject("redefined", f"`{sorted(clash)[0]}` is both a constant and a function")

    calls: dict[str, set] = {}
    helper_kinds: dict[str, str] = {}
    # Helpers first, so update's scalar analysis knows which helpers return numbers.
    for name in helpers + [UPDATE_NAME]:
        checker = _FunctionChecker(functions[name], constants, set(functions), memory, helper_kinds,
                                   walks[id(functions[name])])
        checker.run()
        calls[name] = checker.calls
        if name != UPDATE_NAME:
            helper_kinds[name] = checker.return_kind()
    _check_cycles(calls)
    _sweep(all_nodes)

    keep = set(UPDATE_ARGS) | MODULES | SAFE_BUILTINS | {UPDATE_NAME} | set(functions) | constants
    return GateResult(Verdict(ok=True, stage="gate"), code=code, normalized=strip_imports(code, tree),
                      ast_hash=canonical_hash(all_nodes, keep), helpers=helpers)


def check_reply(reply: str, memory: str = SCALAR, repair: bool = False) -> GateResult:
    """Extract code from a model's raw reply, ``repair`` it where asked (repair.py), then judge it."""
    extraction = extract_code(reply)
    if extraction.code is None:
        return GateResult(reject("gate", extraction.reason, extraction.message))
    code, repairs = extraction.code, []
    if repair:
        from symdisc.judge.repair import repair as repair_code

        try:
            code, repairs = repair_code(code, memory)
        except (RecursionError, MemoryError, ValueError):
            code, repairs = extraction.code, []
    result = check_code(code, memory)
    result.repairs = repairs
    if not result.verdict.ok and result.verdict.reason == "syntax" and extraction.truncated:
        result.verdict.message += " (the reply's code block was never closed: truncated?)"
    return result


__all__ = ["check_code", "check_reply", "GateResult"]
