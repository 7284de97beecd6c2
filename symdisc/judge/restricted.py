"""Compile candidate source with RestrictedPython and give it a locked-down world.

The candidate never sees the real ``torch`` module (``torch.os.system`` would be one attribute
away): it gets a proxy exposing only the gate's allow-list. Every attribute access goes through
``_getattr_`` with type-specific allow-lists, item writes only reach plain dicts and lists, and
``out=`` keywords are refused at call time. These guards repeat the gate's rules on purpose:
the gate works on text, these work on live objects, and an attack must beat both.
"""

from __future__ import annotations

import math
import operator
import sys
from typing import Callable

import torch
from RestrictedPython import compile_restricted_exec
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence

from symdisc.contract import UPDATE_NAME
from symdisc.judge.policy import (CAPPED_FUNCS, FINFO_ATTRS, MATH_NAMES, MAX_MATRIX_SIDE, MAX_RANGE, STATE_METHODS,
                                  TENSOR_ATTRS, TORCH_CONSTANTS, TORCH_FUNCS, TORCH_SUBMODULES)


class CandidateError(Exception):
    """A candidate broke a runtime rule. ``reason`` is a contract reason code."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class _Namespace:
    """A read-only bag of allowed callables and constants; the real module stays out of reach."""

    __slots__ = ("_label", "_members")

    def __init__(self, label: str, members: dict):
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_members", members)

    def __repr__(self) -> str:
        return f"<{self._label} (restricted)>"


def _side(value, what: str) -> int:
    side = int(value) if isinstance(value, int) or (isinstance(value, torch.Tensor) and value.numel() == 1
                                                   and not value.is_floating_point()) else None
    if side is None:
        raise CandidateError("runtime", f"{what} needs an integer size")
    if side > MAX_MATRIX_SIDE:
        raise CandidateError("too_large", f"{what} of side {side:,}: matrices built from numbers are limited "
                             f"to {MAX_MATRIX_SIDE:,} x {MAX_MATRIX_SIDE:,}")
    return side


def capped_eye(n, m=None, *, dtype=None):
    """torch.eye with both sides at most MAX_MATRIX_SIDE, no device/out/layout keywords."""
    n = _side(n, "torch.eye")
    m = n if m is None else _side(m, "torch.eye")
    return torch.eye(n, m, dtype=dtype)


def capped_diag(x, diagonal=0):
    """torch.diag: a matrix's diagonal (a vector), or a vector put on a diagonal (a square matrix whose
    side is capped like torch.eye's)."""
    if not isinstance(x, torch.Tensor):
        raise CandidateError("runtime", "torch.diag needs a tensor")
    if x.dim() == 1:
        _side(x.numel() + abs(int(diagonal)), "torch.diag")
    return torch.diag(x, int(diagonal))


_CAPPED = {"eye": capped_eye, "diag": capped_diag}
assert set(_CAPPED) == CAPPED_FUNCS


def _build_torch_proxy() -> _Namespace:
    # The real functions, not wrappers: a wrapper per call is the proxy fitness's largest overhead.
    # `out=` cannot reach them: the gate (which the worker re-runs) rejects an `out` keyword, and
    # `**kwargs` calls go through guarded_apply below. The two functions that allocate a shape from
    # numbers are the exception: their wrappers cap the shape.
    members = {}
    for name in TORCH_FUNCS:
        fn = _CAPPED.get(name) or getattr(torch, name, None)
        if fn is not None:
            members[name] = fn
    for name in TORCH_CONSTANTS:
        if hasattr(torch, name):
            members[name] = getattr(torch, name)
    for sub, names in TORCH_SUBMODULES.items():
        module = getattr(torch, sub)
        members[sub] = _Namespace(f"torch.{sub}", {n: getattr(module, n) for n in names})
    return _Namespace("torch", members)


TORCH_PROXY = _build_torch_proxy()
MATH_PROXY = _Namespace("math", {name: getattr(math, name) for name in MATH_NAMES})
_FINFO = type(torch.finfo(torch.float32))
_SIZE = torch.Size


def guarded_getattr(obj, name, default=None):
    if not isinstance(name, str) or name.startswith("_"):
        raise CandidateError("dunder", f"attribute {name!r} is not allowed")
    if isinstance(obj, _Namespace):
        try:
            return obj._members[name]
        except KeyError:
            raise CandidateError("forbidden_attr", f"{obj._label}.{name} is not allowed") from None
    if isinstance(obj, torch.Tensor):
        if name in TENSOR_ATTRS:
            return getattr(obj, name)
        if name.endswith("_"):
            raise CandidateError("inplace", f"tensor.{name} changes a tensor in place")
        raise CandidateError("forbidden_attr", f"tensor.{name} is not allowed")
    if isinstance(obj, dict) and name in STATE_METHODS:
        return getattr(obj, name)
    if isinstance(obj, _FINFO) and name in FINFO_ATTRS:
        return getattr(obj, name)
    if isinstance(obj, tuple) and name in ("values", "indices") and (
            hasattr(obj, "_fields") or type(obj).__module__ == "torch.return_types"):
        # torch.max(x, dim), torch.sort(x) and friends return (values, indices). They are
        # torch.return_types structseqs, which have no `_fields`: checking `_fields` alone
        # refused `torch.sort(x).values`, which the gate accepts.
        return getattr(obj, name)
    raise CandidateError("forbidden_attr", f"{type(obj).__name__}.{name} is not allowed")


def guarded_getitem(obj, key):
    if isinstance(obj, (torch.Tensor, dict, list, tuple, _SIZE)):
        return obj[key]
    raise CandidateError("forbidden_attr", f"indexing {type(obj).__name__} is not allowed")


def guarded_write(obj):
    # Item assignment: only containers the candidate made or its own state dict, never a tensor.
    if type(obj) in (dict, list):
        return obj
    if isinstance(obj, torch.Tensor):
        raise CandidateError("inplace", "writing into a tensor changes it in place")
    raise CandidateError("attr_assign", f"cannot write into {type(obj).__name__}")


def guarded_iter(obj):
    if isinstance(obj, (range, list, tuple, _SIZE)):
        return iter(obj)
    raise CandidateError("loop", f"iterating over {type(obj).__name__} is not allowed")


def guarded_apply(fn, *args, **kwargs):
    if "out" in kwargs:
        raise CandidateError("inplace", "out= writes in place")
    return fn(*args, **kwargs)


_INPLACE_OPS = {
    "+=": operator.add, "-=": operator.sub, "*=": operator.mul, "/=": operator.truediv,
    "//=": operator.floordiv, "%=": operator.mod, "**=": operator.pow, "@=": operator.matmul,
}


def inplacevar(op, x, y):
    # `x += y` on a tensor would change it in place (and so grad or param); compute a new value.
    try:
        return _INPLACE_OPS[op](x, y)
    except KeyError:
        raise CandidateError("forbidden_syntax", f"operator {op} is not allowed") from None


def safe_range(*args):
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise CandidateError("loop", f"range longer than {MAX_RANGE}")
    return r


def safe_import(name, globals=None, locals=None, fromlist=(), level=0):
    # Candidate code holds no import statements (the gate strips `import torch`/`import math` and
    # rejects the rest, and the worker re-runs the gate). This hook exists for torch itself: its
    # argument parser may import lazily on a first call, looking __import__ up in the calling
    # frame's builtins. It hands out only modules that are already loaded.
    #
    # Hole found by the hostile tests (runtime layer alone, i.e. with the gate bypassed):
    # `from os import system` bound the real function. IMPORT_FROM reads the name with a plain
    # getattr, past `_getattr_`. Lazy imports from C (PyImport_Import) pass an empty fromlist, so
    # a non-empty fromlist can only come from a `from X import Y` statement: refuse it.
    module = sys.modules.get(name)
    if module is None or level != 0 or fromlist:
        raise ImportError(f"import {name} is not available in the sandbox")
    return module


SAFE_BUILTINS = {
    "abs": abs, "min": min, "max": max, "float": float, "int": int, "bool": bool, "round": round,
    "len": len, "range": safe_range, "True": True, "False": False, "None": None,
    "__import__": safe_import,
}


def compile_candidate(code: str, filename: str = "<candidate>") -> Callable:
    """Compile and run the module code; return its ``update`` function."""
    result = compile_restricted_exec(code, filename=filename)
    if result.errors or result.code is None:
        raise CandidateError("compile", "; ".join(result.errors)[:300] or "RestrictedPython refused the code")
    scope = {
        "__builtins__": SAFE_BUILTINS,
        "__name__": "candidate",
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_write_": guarded_write,
        "_getiter_": guarded_iter,
        "_apply_": guarded_apply,
        "_inplacevar_": inplacevar,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "torch": TORCH_PROXY,
        "math": MATH_PROXY,
    }
    try:
        exec(result.code, scope)
    except CandidateError:
        raise
    except Exception as exc:
        raise CandidateError("runtime", f"module code raised {type(exc).__name__}: {exc}"[:300]) from None
    fn = scope.get(UPDATE_NAME)
    if not callable(fn):
        raise CandidateError("no_update", "the module defines no update function")
    return fn


def warm_up() -> None:
    """Call every allowed torch function once so lazy imports inside torch happen now, while the
    worker can still read the Python installation, and never from candidate code later."""
    x = torch.randn(8, 4)
    y = torch.randn(8, 4)
    for name, fn in TORCH_PROXY._members.items():
        if isinstance(fn, _Namespace):
            for sub in fn._members.values():
                try:
                    sub(x)
                except Exception:
                    pass
            continue
        if not callable(fn) or isinstance(fn, torch.dtype):
            continue
        for args in ((x,), (x, y), (x > 0, x, y), (x, 0.5), (x, y, y)):
            try:
                fn(*args)
                break
            except Exception:
                continue
    for name in TENSOR_ATTRS:
        attr = getattr(x, name, None)
        if callable(attr):
            for args in ((), (y,), (0.5,), (-1.0, 1.0)):
                try:
                    attr(*args)
                    break
                except Exception:
                    continue
    torch.tensor(1.0).item()
    torch.median(torch.sign(x))
    # matrix products and norms, which the generic tries above call with the wrong shapes
    a = x @ y.T
    torch.mm(x, y.t()) + torch.matmul(x.mT, y).sum() + x.mm(y.T).trace()
    capped_eye(8) + capped_diag(a.diagonal()) + torch.diag(a)
    torch.linalg.matrix_norm(a) + torch.linalg.vector_norm(x, dim=1).sum() + torch.norm(x, dim=0).sum()
