"""What a candidate may touch: the allow-lists, in one short file for a security reviewer.

The static gate (``gate.py``) and the sandbox's runtime guards (``restricted.py``) both read these
tables, so the two layers can never disagree about what a candidate may reach. Anything not listed
here is refused; the comments say why each entry is harmless.
"""

from __future__ import annotations

import ast

MAX_CODE_CHARS = 20_000
MAX_NODES = 3_000
MAX_INT = 10**7  # larger ints only serve to build huge shapes or loops
MAX_FLOAT = 1e30
MAX_POW_EXPONENT = 64
MAX_POW_BITS = 1_024  # a power of constants may not pass the float range (2**1024)
MAX_RANGE = 1_000
MAX_LOOP_ITERATIONS = 10_000  # product over nested loops
MAX_STRING = 64
# The largest side of an identity or of a diagonal matrix built from a vector (torch.eye, torch.diag):
# the only calls that allocate a shape from numbers. 4096 x 4096 float32 is 64 MiB, well inside the
# worker's address space; products of views of a parameter are bounded by the cost probe instead.
MAX_MATRIX_SIDE = 4_096

# torch functions a candidate may call: elementwise maths, reductions, comparisons, *_like
# constructors and matrix products of views of a parameter (mm, matmul, `@`: their cost is bounded by
# the cost probe). Nothing that allocates a shape from numbers (zeros, arange, repeat, outer, kron,
# matrix_power), except eye and diag, whose sides the sandbox caps at MAX_MATRIX_SIDE (CAPPED_FUNCS);
# nothing that reads or writes files (load, save, from_file) or reaches internals (ops, _C, os).
TORCH_FUNCS = frozenset("""
abs absolute sign sgn signbit sqrt rsqrt square exp exp2 expm1 log log1p log2 log10 tanh sigmoid
atan atan2 sin cos erf hypot clamp clip clamp_min clamp_max maximum minimum fmax fmin where lerp
addcmul addcdiv add sub subtract mul multiply div divide true_divide neg negative reciprocal pow
floor ceil round trunc frac fmod remainder copysign heaviside nan_to_num isfinite isnan isinf
median nanmedian mean nanmean sum nansum std var std_mean var_mean norm max min amax amin
logsumexp softmax cumsum sort topk kthvalue quantile count_nonzero all any dot vdot
gt lt ge le eq ne greater less greater_equal less_equal equal logical_and logical_or logical_not
logical_xor zeros_like ones_like full_like rand_like randn_like numel relu tensor finfo
mm matmul t diagonal trace diag eye
""".split())
CAPPED_FUNCS = frozenset("eye diag".split())  # the sandbox hands out wrappers that cap their sides
TORCH_CONSTANTS = frozenset("float32 float64 float16 bfloat16 pi e inf nan".split())
TORCH_SUBMODULES = {"linalg": frozenset("norm vector_norm matrix_norm".split())}

# Tensor methods and attributes. In-place methods (trailing underscore) are rejected separately
# with the `inplace` reason; data, grad, numpy, tolist, storage and friends are simply absent.
TENSOR_ATTRS = frozenset("""
abs sign sgn signbit sqrt rsqrt square exp expm1 log log1p log2 tanh sigmoid atan sin cos erf
clamp clip clamp_min clamp_max maximum minimum fmax fmin lerp addcmul addcdiv add sub mul div neg
reciprocal pow floor ceil round trunc frac fmod remainder copysign nan_to_num isfinite isnan isinf
median mean sum std var norm max min amax amin cumsum sort topk kthvalue quantile count_nonzero
all any dot gt lt ge le eq ne logical_and logical_or logical_not where item numel dim size
float double clone detach flatten reshape view view_as reshape_as expand_as type_as t T mT
shape dtype ndim values indices relu softmax logsumexp mm matmul diagonal trace
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

