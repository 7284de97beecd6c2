"""The scalar memory class's proof: everything stored into ``state`` is a Python number.

Flow-insensitive type inference over one function's locals (scalar or unknown), mixed into the
gate's function checker. A value whose kind cannot be proven scalar is refused: the inference errs
towards rejection, never towards letting a tensor into ``state``.
"""

from __future__ import annotations

import ast

from symdisc.judge.nodes import GateReject, _is_state, _walk
from symdisc.judge.policy import FINFO_ATTRS

_SCALAR, _TENSOR, _UNKNOWN = "scalar", "tensor", "unknown"


class ScalarStateInference:
    """Needs from its host: ``nodes``, ``assigned``, ``module_names``, ``helper_kinds``."""

    def _check_scalar_state(self) -> None:
        """In `scalar` mode every value stored into state must be provably a Python number."""
        kinds = self._infer_local_kinds()
        for node in self.nodes:
            stored = []
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in _walk(target):
                        if isinstance(sub, ast.Subscript) and _is_state(sub.value):
                            if isinstance(target, (ast.Tuple, ast.List)):
                                raise GateReject("stateful", "unpack into locals first, then store numbers in state", node)
                            stored.append(node.value)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_state(node.func.value):
                method = node.func.attr
                if method == "setdefault" and len(node.args) >= 2:
                    stored.append(node.args[1])
                elif method == "setdefault" and len(node.args) == 1:
                    raise GateReject("stateful", "state.setdefault needs a numeric default", node)
                elif method == "update":
                    if node.args and not isinstance(node.args[0], ast.Dict):
                        raise GateReject("stateful", "state.update takes only a literal dict of numbers", node)
                    for arg in node.args:
                        stored.extend(arg.values)
                    stored.extend(kw.value for kw in node.keywords)
            for value in stored:
                if self._kind(value, kinds) != _SCALAR:
                    raise GateReject(
                        "stateful",
                        "in the scalar memory class state holds only Python numbers; "
                        "this value may be a tensor (reduce it and use .item() or float())", node)

    def _infer_local_kinds(self) -> dict:
        """Flow-insensitive: a local is scalar only if every assignment to it is scalar."""
        kinds = {name: _UNKNOWN for name in self.assigned}
        kinds.update({"lr": _SCALAR, "t": _SCALAR, "grad": _TENSOR, "param": _TENSOR})
        kinds.update({name: _SCALAR for name in self.module_names})
        for _ in range(len(self.assigned) + 1):
            changed = False
            for name, nodes in self.assigned.items():
                scalar = all(self._assigned_kind(n, name, kinds) == _SCALAR for n in nodes)
                new = _SCALAR if scalar and name not in ("grad", "param") else _UNKNOWN
                if kinds.get(name) != new:
                    kinds[name] = new
                    changed = True
            if not changed:
                break
        return kinds

    def _assigned_kind(self, node: ast.AST, name: str, kinds: dict) -> str:
        if isinstance(node, ast.For):
            return _SCALAR  # loop variables run over range()
        if isinstance(node, ast.AugAssign):
            return _SCALAR if self._kind(node.value, kinds) == _SCALAR and kinds.get(name) != _UNKNOWN else _UNKNOWN
        target_list = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in target_list:
            if isinstance(target, ast.Name) and target.id == name:
                return self._kind(node.value, kinds)
        return _UNKNOWN  # tuple unpacking: be conservative

    def _kind(self, node: ast.AST, kinds: dict) -> str:
        if isinstance(node, ast.Constant):
            return _SCALAR if isinstance(node.value, (int, float, bool)) else _UNKNOWN
        if isinstance(node, ast.Name):
            return kinds.get(node.id, _UNKNOWN)
        if isinstance(node, ast.UnaryOp):
            return self._kind(node.operand, kinds)
        if isinstance(node, ast.BinOp):
            both = {self._kind(node.left, kinds), self._kind(node.right, kinds)}
            return _SCALAR if both == {_SCALAR} else _UNKNOWN
        if isinstance(node, ast.BoolOp):
            return _SCALAR if all(self._kind(v, kinds) == _SCALAR for v in node.values) else _UNKNOWN
        if isinstance(node, ast.Compare):
            parts = [node.left, *node.comparators]
            return _SCALAR if all(self._kind(p, kinds) == _SCALAR for p in parts) else _UNKNOWN
        if isinstance(node, ast.IfExp):
            both = {self._kind(node.body, kinds), self._kind(node.orelse, kinds)}
            return _SCALAR if both == {_SCALAR} else _UNKNOWN
        if isinstance(node, ast.Subscript):
            if _is_state(node.value):
                return _SCALAR  # state holds only numbers, by this very check
            if isinstance(node.value, ast.Attribute) and node.value.attr == "shape":
                return _SCALAR
            return _UNKNOWN
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id in ("math",):
                return _SCALAR
            if node.attr in ("ndim",) or node.attr in FINFO_ATTRS:
                return _SCALAR
            return _UNKNOWN
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                if func.id in ("float", "int", "bool", "len", "round"):
                    return _SCALAR
                if func.id in ("abs", "min", "max"):
                    return _SCALAR if node.args and all(self._kind(a, kinds) == _SCALAR for a in node.args) else _UNKNOWN
                if func.id in self.helper_kinds:
                    return self.helper_kinds[func.id]
                return _UNKNOWN
            if isinstance(func, ast.Attribute):
                if func.attr in ("item", "numel", "dim") and not _is_state(func.value):
                    return _SCALAR
                if isinstance(func.value, ast.Name) and func.value.id == "math":
                    return _SCALAR
                if _is_state(func.value) and func.attr in ("get", "setdefault", "pop"):
                    defaults = node.args[1:]
                    return _SCALAR if all(self._kind(d, kinds) == _SCALAR for d in defaults) else _UNKNOWN
                if func.attr == "size" and node.args:
                    return _SCALAR
        return _UNKNOWN

    def return_kind(self) -> str:
        kinds = self._infer_local_kinds()
        returns = [n.value for n in self.nodes if isinstance(n, ast.Return) and n.value is not None]
        return _SCALAR if returns and all(self._kind(r, kinds) == _SCALAR for r in returns) else _UNKNOWN

