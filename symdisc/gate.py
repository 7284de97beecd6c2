"""The static gate: an AST allow-list verdict on candidate source, in well under a millisecond.

The allow-lists live here and only here; the sandbox's runtime guards import them, so the static
and dynamic layers can never disagree about what a candidate may touch.

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
import hashlib
import math
import operator
from dataclasses import dataclass, field
from typing import Optional

from .contract import BUFFERS, MEMORY_CLASSES, SCALAR, UPDATE_ARGS, UPDATE_NAME, Verdict, reject
from .extract import extract_code

MAX_CODE_CHARS = 20_000
MAX_NODES = 3_000
MAX_INT = 10**7  # larger ints only serve to build huge shapes or loops
MAX_FLOAT = 1e30
MAX_POW_EXPONENT = 64
MAX_POW_BITS = 1_024  # a power of constants may not pass the float range (2**1024)
MAX_RANGE = 1_000
MAX_LOOP_ITERATIONS = 10_000  # product over nested loops
MAX_STRING = 64

# torch functions a candidate may call: elementwise maths, reductions, comparisons and *_like
# constructors. Nothing that allocates a shape from numbers (zeros, arange, repeat, outer, kron,
# matmul), reads or writes files (load, save, from_file), or reaches internals (ops, _C, os).
TORCH_FUNCS = frozenset("""
abs absolute sign sgn signbit sqrt rsqrt square exp exp2 expm1 log log1p log2 log10 tanh sigmoid
atan atan2 sin cos erf hypot clamp clip clamp_min clamp_max maximum minimum fmax fmin where lerp
addcmul addcdiv add sub subtract mul multiply div divide true_divide neg negative reciprocal pow
floor ceil round trunc frac fmod remainder copysign heaviside nan_to_num isfinite isnan isinf
median nanmedian mean nanmean sum nansum std var std_mean var_mean norm max min amax amin
logsumexp softmax cumsum sort topk kthvalue quantile count_nonzero all any dot vdot
gt lt ge le eq ne greater less greater_equal less_equal equal logical_and logical_or logical_not
logical_xor zeros_like ones_like full_like rand_like randn_like numel relu tensor finfo
""".split())
TORCH_CONSTANTS = frozenset("float32 float64 float16 bfloat16 pi e inf nan".split())
TORCH_SUBMODULES = {"linalg": frozenset("norm vector_norm".split())}

# Tensor methods and attributes. In-place methods (trailing underscore) are rejected separately
# with the `inplace` reason; data, grad, numpy, tolist, storage and friends are simply absent.
TENSOR_ATTRS = frozenset("""
abs sign sgn signbit sqrt rsqrt square exp expm1 log log1p log2 tanh sigmoid atan sin cos erf
clamp clip clamp_min clamp_max maximum minimum fmax fmin lerp addcmul addcdiv add sub mul div neg
reciprocal pow floor ceil round trunc frac fmod remainder copysign nan_to_num isfinite isnan isinf
median mean sum std var norm max min amax amin cumsum sort topk kthvalue quantile count_nonzero
all any dot gt lt ge le eq ne logical_and logical_or logical_not where item numel dim size
float double clone detach flatten reshape view view_as reshape_as expand_as type_as t T mT
shape dtype ndim values indices relu softmax logsumexp
""".split())
STATE_METHODS = frozenset("get setdefault keys values items update pop".split())
FINFO_ATTRS = frozenset("eps tiny max min".split())
ATTRS = TENSOR_ATTRS | STATE_METHODS | FINFO_ATTRS

MATH_NAMES = frozenset("""
sqrt exp log log1p log2 log10 tanh atan atan2 sin cos erf fabs floor ceil copysign hypot pow
isfinite isnan isinf pi e inf
""".split())

SAFE_BUILTINS = frozenset("abs min max float int bool round range len".split())
MODULES = frozenset({"torch", "math"})

# Builtins that are rejected with a pointed message: they are the classic sandbox escapes.
ESCAPE_BUILTINS = frozenset("""
eval exec compile getattr setattr delattr hasattr globals locals vars dir open input print
__import__ type object super id hash help breakpoint memoryview bytearray bytes classmethod
staticmethod property callable isinstance issubclass format repr str chr ord iter next
""".split())
FORMAT_ATTRS = frozenset("format format_map join encode decode replace split".split())


class GateReject(Exception):
    def __init__(self, reason: str, message: str, node: Optional[ast.AST] = None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.line = getattr(node, "lineno", None)


@dataclass
class GateResult:
    verdict: Verdict
    code: Optional[str] = None  # the extracted source
    normalized: Optional[str] = None  # imports and docstrings stripped; what the sandbox runs
    ast_hash: Optional[str] = None  # identical for programs that differ only in names/format
    helpers: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "verdict": self.verdict.as_dict(),
            "code": self.code,
            "normalized": self.normalized,
            "ast_hash": self.ast_hash,
        }


_SCALAR, _TENSOR, _UNKNOWN = "scalar", "tensor", "unknown"


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


_CHILD_FIELDS: dict = {}


def _child_fields(kind: type) -> tuple:
    """The fields of a node type that can hold child nodes. `ctx` is left out: it only ever holds
    the childless Load/Store/Del markers, a quarter of all nodes, and no check looks at them."""
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _CHILD_FIELDS[kind] = tuple(f for f in kind._fields if f != "ctx")
    return fields


def _walk(node: ast.AST) -> list:
    """Every node under ``node`` (itself included, Load/Store markers left out), breadth first,
    like ast.walk but as a list and about twice as fast: walking the tree is much of the gate's time."""
    out = [node]
    i = 0
    AST, cached = ast.AST, _CHILD_FIELDS
    while i < len(out):
        current = out[i]
        i += 1
        kind = type(current)
        for name in cached.get(kind) or _child_fields(kind):
            value = getattr(current, name, None)
            if isinstance(value, AST):
                out.append(value)
            elif type(value) is list:
                for item in value:
                    if isinstance(item, AST):
                        out.append(item)
    return out


class _FunctionChecker(ast.NodeVisitor):
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
        self.visit(node.value)

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
        if isinstance(node.op, ast.MatMult):
            raise GateReject("too_large", "`@` can build matrices far larger than a parameter", node)
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

    # -- scalar memory class ----------------------------------------------------------------
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


_FORBIDDEN_NODES = (
    ast.ClassDef, ast.AsyncFunctionDef, ast.Await, ast.Yield, ast.YieldFrom, ast.Try, ast.With,
    ast.AsyncWith, ast.AsyncFor, ast.Raise, ast.Assert, ast.Delete, ast.Starred, ast.JoinedStr,
    ast.FormattedValue, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr,
    ast.Set, ast.Match,
)
if hasattr(ast, "TryStar"):
    _FORBIDDEN_NODES = _FORBIDDEN_NODES + (ast.TryStar,)
_FORBIDDEN_NODES_REASON = {
    ast.JoinedStr: ("format", "f-strings are not allowed"),
    ast.FormattedValue: ("format", "f-strings are not allowed"),
    ast.ListComp: ("loop", "comprehensions are not allowed; use `for i in range(N)`"),
    ast.SetComp: ("loop", "comprehensions are not allowed; use `for i in range(N)`"),
    ast.DictComp: ("loop", "comprehensions are not allowed; use `for i in range(N)`"),
    ast.GeneratorExp: ("loop", "generator expressions are not allowed"),
    ast.Try: ("forbidden_syntax", "`try` is not allowed: errors must surface"),
    ast.ClassDef: ("forbidden_syntax", "classes are not allowed"),
}


def _is_docstring(stmt: ast.AST) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _is_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "state"


def _target_names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _target_names(elt)]
    return []


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


def _check_signature(fn: ast.FunctionDef) -> None:
    args = fn.args
    names = [a.arg for a in args.args]
    if tuple(names) != UPDATE_ARGS or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise GateReject("signature", f"update must be `def update({', '.join(UPDATE_ARGS)})`, "
                         f"got ({', '.join(names)})", fn)
    if args.defaults or args.kw_defaults:
        raise GateReject("stateful", "update may not have default arguments (defaults can hold state)", fn)


def _check_helper_signature(fn: ast.FunctionDef) -> None:
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


def _canonical_hash(nodes: list, keep: set) -> str:
    """A hash that ignores names of locals, comments, docstrings, imports and formatting."""
    mapping: dict[str, str] = {}
    parts = []
    skipped = set()  # string statements (docstrings, stray strings) and what hangs below imports
    for node in nodes:
        kind = type(node)
        if kind is ast.Expr and type(node.value) is ast.Constant and isinstance(node.value.value, str):
            skipped.add(id(node))
            skipped.add(id(node.value))
            continue
        if kind is ast.Import or kind is ast.ImportFrom:
            skipped.update(id(alias) for alias in node.names)
            continue
        if id(node) in skipped:
            continue
        parts.append(kind.__name__)
        if kind is ast.Name:
            parts.append(node.id if node.id in keep else mapping.setdefault(node.id, f"v{len(mapping)}"))
        elif kind is ast.arg:
            parts.append(node.arg if node.arg in keep else mapping.setdefault(node.arg, f"v{len(mapping)}"))
        elif kind is ast.Constant:
            parts.append(repr(node.value))
        elif kind is ast.Attribute:
            parts.append(node.attr)
        elif kind is ast.FunctionDef:
            parts.append(node.name)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _strip_imports(code: str, tree: ast.Module) -> str:
    """The source without its `import torch`/`import math` lines (the sandbox provides both)."""
    lines = code.split("\n")
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for i in range(stmt.lineno - 1, stmt.end_lineno):
                lines[i] = ""
    return "\n".join(lines).strip("\n") + "\n"


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
                raise GateReject("duplicate", f"`{stmt.name}` is defined twice", stmt)
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
        raise GateReject("duplicate", f"`{sorted(clash)[0]}` is both a constant and a function")

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

    keep = set(UPDATE_ARGS) | MODULES | SAFE_BUILTINS | {UPDATE_NAME} | set(functions) | constants
    return GateResult(Verdict(ok=True, stage="gate"), code=code, normalized=_strip_imports(code, tree),
                      ast_hash=_canonical_hash(all_nodes, keep), helpers=helpers)


def check_reply(reply: str, memory: str = SCALAR) -> GateResult:
    """Extract code from a model's raw reply, then judge it."""
    extraction = extract_code(reply)
    if extraction.code is None:
        return GateResult(reject("gate", extraction.reason, extraction.message))
    result = check_code(extraction.code, memory)
    if not result.verdict.ok and result.verdict.reason == "syntax" and extraction.truncated:
        result.verdict.message += " (the reply's code block was never closed: truncated?)"
    return result


__all__ = ["check_code", "check_reply", "GateResult", "TORCH_FUNCS", "TENSOR_ATTRS", "STATE_METHODS",
           "MATH_NAMES", "SAFE_BUILTINS", "BUFFERS", "SCALAR"]
