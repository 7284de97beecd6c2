"""The mutation engine's function library, read from the gate's own allow-list at run time.

Every callable the gate allows (``judge/policy.py``: torch functions, math functions, the safe
builtins) is sorted into a kind by calling it on small probe values, so a function the allow-list
gains tomorrow joins the library without a second list to keep in step:

* ``map1``: tensor -> tensor of the same shape (``torch.abs``, ``torch.sign`` ...)
* ``map2``: tensor, tensor -> tensor of the same shape (``torch.maximum``, ``torch.atan2`` ...)
* ``reduce``: tensor -> a 0-dim tensor (``torch.mean``, ``torch.norm`` ...)
* ``smap1`` / ``smap2``: numbers -> a number (``math.sqrt``, ``max`` ...)
* ``odd``: the ``map1`` functions with f(-x) = -f(x) (``torch.tanh``, ``torch.sign`` ...): they keep
  the gradient's direction, which a step needs (an even function makes it ignore the gradient's sign)

A function that fails on the probe, returns another shape, a non-float dtype or a tuple, ignores
its input (``zeros_like``) or is random (``rand_like``) is left out: swapping one function for
another of the same kind keeps a program well typed for every parameter shape. Only the library's
own torch and math functions run here, never a candidate's code.
"""

from __future__ import annotations

import math
from functools import lru_cache

KINDS = ("map1", "map2", "reduce", "smap1", "smap2", "odd")


def _same(a, b) -> bool:
    import torch

    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape \
        and bool(torch.equal(a, b))


def _tensor_kind(fn, args, shape) -> bool:
    import torch

    out = fn(*args)
    return isinstance(out, torch.Tensor) and out.dtype.is_floating_point and tuple(out.shape) == shape \
        and bool(torch.isfinite(out).all())


def _probe_torch(name: str) -> set:
    import torch

    fn = getattr(torch, name, None)
    if not callable(fn):
        return set()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 4, generator=g) + 0.5  # positive: the shape, dtype and finiteness probe
    y = torch.rand(3, 4, generator=g) + 0.5
    mixed = torch.randn(3, 4, generator=g)  # both signs: the dependence probe (sign, abs)
    kinds = set()
    try:
        if _same(fn(mixed), mixed):
            return kinds  # the identity (a copy constructor): nothing to mutate
    except Exception:
        pass
    for kind, args, others, shape in (("map1", (x,), [(x * 1.7 + 0.1,), (-mixed,)], (3, 4)),
                                      ("reduce", (x,), [(x * 1.7 + 0.1,)], ()),
                                      ("map2", (x, y), [(x * 1.7 + 0.1, y), (-mixed, y)], (3, 4))):
        try:
            if not (_tensor_kind(fn, args, shape) and _same(fn(*args), fn(*args))):
                continue
            if kind == "map1":
                varied = not _same(fn(mixed), fn(-mixed)) or not _same(fn(x), fn(*others[0]))
                if varied and _same(fn(-mixed), -fn(mixed)):
                    kinds.add("odd")
            else:
                varied = not _same(fn(*args), fn(*others[0]))
            if varied:
                kinds.add(kind)
        except Exception:  # a probe that does not fit this kind
            continue
    return kinds


def _probe_number(fn) -> set:
    kinds = set()
    for kind, args, other in (("smap1", (0.7,), (0.4,)), ("smap2", (0.7, 0.3), (0.4, 0.3))):
        try:
            out = fn(*args)
            if isinstance(out, float) and math.isfinite(out) and out != fn(*other):
                kinds.add(kind)
        except Exception:
            continue
    return kinds


@lru_cache(maxsize=None)
def _library(torch_funcs: frozenset, math_names: frozenset, builtins: frozenset) -> dict:
    import warnings

    library: dict = {k: [] for k in KINDS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in sorted(torch_funcs):
            for kind in _probe_torch(name):
                library[kind].append(f"torch.{name}")
    for name in sorted(math_names):
        fn = getattr(math, name, None)
        if callable(fn):
            for kind in _probe_number(fn):
                library[kind].append(f"math.{name}")
    for name in sorted(builtins & {"abs", "min", "max"}):
        for kind in _probe_number(__builtins__[name] if isinstance(__builtins__, dict) else getattr(__builtins__, name)):
            library[kind].append(name)
    return {k: tuple(v) for k, v in library.items()}


def function_library() -> dict:
    """{kind: (qualified names, sorted)} from the gate's allow-list as it stands now."""
    from symdisc.judge import policy

    return _library(frozenset(policy.TORCH_FUNCS), frozenset(policy.MATH_NAMES), frozenset(policy.SAFE_BUILTINS))


def kind_of(name: str) -> set:
    """The kinds a qualified function name belongs to."""
    return {k for k, names in function_library().items() if name in names}
