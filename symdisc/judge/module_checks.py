"""The gate's checks of whole functions and the module: signatures, annotations, recursion, a last sweep.

Split from ``gate.py`` (which checks function bodies statement by statement) so each file stays short.
"""

from __future__ import annotations

import ast

from symdisc.contract import UPDATE_ARGS
from symdisc.judge.constants import _constant_number
from symdisc.judge.nodes import GateReject
from symdisc.judge.policy import ESCAPE_BUILTINS, TORCH_CONSTANTS, TORCH_FUNCS, TORCH_SUBMODULES

ANNOTATION_NAMES = frozenset({"float", "int", "bool", "dict"})


def _check_type_params(fn: ast.FunctionDef) -> None:
    if getattr(fn, "type_params", None):  # Python 3.12: def update[T: ...](...)
        raise GateReject("forbidden_syntax", "type parameters are not allowed", fn)


def _check_signature(fn: ast.FunctionDef) -> None:
    _check_type_params(fn)
    args = fn.args
    names = [a.arg for a in args.args]
    if tuple(names) != UPDATE_ARGS or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise GateReject("signature", f"update must be `def update({', '.join(UPDATE_ARGS)})`, "
                         f"got ({', '.join(names)})", fn)
    if args.defaults or args.kw_defaults:
        raise GateReject("stateful", "update may not have default arguments (defaults can hold state)", fn)


def _check_helper_signature(fn: ast.FunctionDef) -> None:
    _check_type_params(fn)
    args = fn.args
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise GateReject("forbidden_syntax", f"helper `{fn.name}` may take plain parameters only", fn)
    for arg in args.args:
        if arg.arg.startswith("_"):
            raise GateReject("dunder", f"parameter `{arg.arg}` may not start with an underscore", fn)
        if arg.arg == "state":
            raise GateReject("stateful", "helpers may not take `state`", fn)
    for default in args.defaults:
        if _constant_number(default) is None:
            raise GateReject("stateful", f"helper `{fn.name}` may only have numeric defaults "
                             "(mutable defaults can hold state)", fn)


def _check_cycles(calls: dict) -> None:
    visiting, done = set(), set()

    def visit(name, path):
        if name in visiting:
            raise GateReject("recursion", f"`{name}` calls itself through {' -> '.join(path + [name])}")
        if name in done or name not in calls:
            return
        visiting.add(name)
        for callee in sorted(calls[name]):
            visit(callee, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in sorted(calls):
        visit(name, [])


def _sweep(nodes: list) -> None:
    """A last pass over every node of the module, wherever it stands (annotations, defaults,
    decorators, module level): no underscore names or attributes, no escape builtins, no torch
    attribute outside the allow-list. The checks above are contextual; this one forgets nothing."""
    for node in nodes:
        kind = type(node)
        if kind is ast.Name:
            if node.id.startswith("_"):
                raise GateReject("dunder", f"name `{node.id}` may not start with an underscore", node)
            if node.id in ESCAPE_BUILTINS:
                raise GateReject("forbidden_name", f"`{node.id}` is not allowed", node)
        elif kind is ast.Attribute:
            if node.attr.startswith("_"):
                raise GateReject("dunder", f"attribute `.{node.attr}` is not allowed", node)
            base = node.value
            if type(base) is ast.Name and base.id == "torch" and node.attr not in TORCH_FUNCS \
                    and node.attr not in TORCH_CONSTANTS and node.attr not in TORCH_SUBMODULES and node.attr != "Tensor":
                raise GateReject("forbidden_attr", f"`torch.{node.attr}` is not in the allow-list", node)
        elif kind is ast.arg and node.arg.startswith("_"):
            raise GateReject("dunder", f"parameter `{node.arg}` may not start with an underscore", node)
        elif kind is ast.FunctionDef and node.decorator_list:
            raise GateReject("forbidden_syntax", "decorators are not allowed", node)
