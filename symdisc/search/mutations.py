"""Program mutations over the ``def update`` AST (the Lion paper's program search, on Python).

A program is read as straight-line code: the statements of ``update`` and its final return. Each
operator makes one change and keeps the program well typed by a small type inference over the
statements before the change (``T`` a tensor shaped like the parameter, ``R`` a 0-dim tensor, ``S``
a Python number):

* ``insert``: a new statement ``v = f(a)``, ``f(a, b)``, ``a op b`` or ``a op c`` from the function
  library (``library.py``, read from the gate's allow-list), a tensor divided by a scale statistic
  of a tensor (``a / (reduce(|b|) + eps)``), a tensor's matrix view (rows x the rest) with its rows
  or its columns normalised, or a block that orthogonalises that view (Newton-Schulz, as Muon does),
  and one later use of a same-typed variable rewired to ``v`` (otherwise the statement would be dead);
* ``state``: an exponential average kept in a new state slot that reads as zero until written
  (``state.get(k, 0.0)``; ``torch.zeros_like(param)`` for tensors under ``buffers``);
* ``delete``: a statement goes, its later uses read a same-typed variable instead;
* ``modify``: an operator, or an argument, changes to another of the same type;
* ``swap``: a function changes to another of the same kind;
* ``constant``: one numeric constant is multiplied by 2^N(0, 1), nothing else changes;
* ``crossover``: a statement of a second program, with the statements it needs (renamed), joins the
  first before its return, and a use there is rewired to it.

Under a buffer limit (``max_buffers``) a new slot averages a statistic (a Python number) once the
program keeps that many tensor slots, and a child with more tensor slots is not made.

``Mutator.child`` repeats an operator until the child passes the gate and its live program (dead
statements removed, ``deadcode.py``) hashes differently from the parent's and from every hash the
caller already knows, so a repeat never costs a sandbox evaluation.
"""

from __future__ import annotations

import ast
import copy
import random
from dataclasses import dataclass
from typing import Callable, Optional

from symdisc.contract import SCALAR, UPDATE_ARGS
from symdisc.search.deadcode import prune, update_def
from symdisc.search.library import function_library

KINDS = ("insert", "state", "delete", "modify", "swap", "constant", "crossover")
BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div)
ARG_TYPES = {"grad": "T", "param": "T", "lr": "S", "t": "S"}
MAX_TRIES = 30
BLOCK_SHARE = 0.05  # of inserts: the orthogonalisation block instead of one statement
EPS = 1e-8
# Newton-Schulz quintic coefficients (Muon's): five iterations map a matrix of spectral norm <= 1 to
# about its nearest semi-orthogonal matrix
NS = (3.4445, -4.775, 2.0315)
NS_STEPS = 5
_BUILTIN_NAMES = frozenset({"abs", "min", "max", "float", "int", "bool", "round", "range", "len"})


@dataclass
class Child:
    code: str  # the live program (dead statements removed), as the gate normalized it
    kind: str  # one of KINDS
    detail: str  # what changed, in a few words
    ast_hash: str


def _num(x: float) -> float:
    return float(f"{x:.4g}")


def _is_number(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def _body(fn: ast.FunctionDef) -> list:
    return [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]


def constant_sites(fn: ast.FunctionDef) -> list:
    """The numeric constants of ``update`` a search may change: not zero, not a range() bound, an
    integer exponent or a subscript."""
    skip = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            skip.update(id(a) for a in ast.walk(node))
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and _is_number(node.right) \
                and isinstance(node.right.value, int):
            skip.add(id(node.right))
        if isinstance(node, ast.Subscript):
            skip.update(id(a) for a in ast.walk(node.slice))
    return [n for n in ast.walk(fn) if _is_number(n) and id(n) not in skip and n.value != 0]


def scales_with_lr(code: str) -> bool:
    """Is ``lr`` a factor of every term of the returned step (so the step is zero when lr is)? Read
    through the names update binds once; a state read or anything else is not."""
    fn = update_def(ast.parse(code))
    if fn is None:
        return False
    body = _body(fn)
    bound: dict = {}
    for stmt in body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            bound[name] = None if name in bound else stmt.value  # rebound: not followed
    ret = body[-1] if body and isinstance(body[-1], ast.Return) else None

    def factor(node, depth=0) -> bool:
        if depth > 20:
            return False
        if isinstance(node, ast.Name):
            if node.id == "lr":
                return True
            value = bound.get(node.id)
            return value is not None and factor(value, depth + 1)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            return factor(node.operand, depth + 1)
        if isinstance(node, ast.BinOp):
            if isinstance(node.op, ast.Mult):
                return factor(node.left, depth + 1) or factor(node.right, depth + 1)
            if isinstance(node.op, ast.Div):
                return factor(node.left, depth + 1)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                return factor(node.left, depth + 1) and factor(node.right, depth + 1)
        return False

    return ret is not None and ret.value is not None and factor(ret.value)


def step_scale_constants(fn: ast.FunctionDef) -> list:
    """Constants that only scale the whole returned step (``return 0.5 * (lr * s)``): the proxy's
    learning-rate grid and the fitter's multiplier already search that scale, so a mutation of one
    is a wasted evaluation."""
    ret = next((s for s in reversed(fn.body) if isinstance(s, ast.Return) and s.value is not None), None)
    out, spine = [], [ret.value] if ret is not None else []
    while spine:
        node = spine.pop()
        if _is_number(node):
            out.append(node)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
            spine += [node.left, node.right]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            spine.append(node.operand)
    return out


# -- types --------------------------------------------------------------------------------------
class Types:
    """Types of the names bound before each statement of ``update``."""

    def __init__(self, body: list, memory: str):
        self.memory = memory
        self.lib = function_library()
        self.before: list[dict] = []
        env = dict(ARG_TYPES)
        for stmt in body:
            self.before.append(dict(env))
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                kind = self.infer(stmt.value, env)
                if kind is None:
                    env.pop(stmt.targets[0].id, None)
                else:
                    env[stmt.targets[0].id] = kind
            elif isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.If)):
                for node in ast.walk(stmt):  # bound in a way this reading does not follow: unknown
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                        env.pop(node.id, None)
        self.after = env

    def infer(self, node: ast.AST, env: dict) -> Optional[str]:
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if _is_number(node):
            return "S"
        if isinstance(node, ast.UnaryOp):
            return self.infer(node.operand, env)
        if isinstance(node, ast.BinOp):
            kinds = {self.infer(node.left, env), self.infer(node.right, env)}
            if None in kinds or isinstance(node.op, ast.MatMult):
                return None
            return "T" if "T" in kinds else "R" if "R" in kinds else "S"
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "state":
            return "S" if self.memory == SCALAR else None
        if not isinstance(node, ast.Call):
            return None
        func = node.func
        args = [self.infer(a, env) for a in node.args]
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id == "state" and func.attr == "get":
                if self.memory == SCALAR:
                    return "S"
                return "T" if len(node.args) > 1 and "zeros_like" in ast.dump(node.args[1]) else None
            if func.attr == "item" and not node.args:
                return "S"
            if func.attr == "reshape_as" and len(node.args) == 1:  # a view of the parameter's shape
                return "T" if args[0] == "T" else None
            name = ast.unparse(func)
            if name.startswith("torch.") and node.args and not node.keywords:
                if name in self.lib["reduce"] and len(node.args) == 1 and name not in self.lib["map1"]:
                    return "R" if args[0] in ("T", "R") else None
                if (len(node.args) == 1 and name in self.lib["map1"]) or (len(node.args) == 2 and name in self.lib["map2"]):
                    return "T" if "T" in args else None
                return None
            if name.startswith("math."):
                return "S" if all(a == "S" for a in args) else None
            return None
        if isinstance(func, ast.Name) and func.id in ("abs", "min", "max", "float"):
            return "S" if args and all(a == "S" for a in args) else None
        return None


def tensor_slots(fn: ast.FunctionDef, memory: str) -> set:
    """The state keys ``update`` keeps tensors in, as far as reading the code tells: a ``state.get``
    whose default is ``torch.zeros_like(...)``, or a write of a tensor-typed value. The sandbox counts
    the real buffers; this reading only keeps the engine from proposing what it would refuse."""
    if memory == SCALAR:
        return set()
    keys = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "state" and len(node.args) > 1 \
                and "zeros_like" in ast.dump(node.args[1]) and isinstance(node.args[0], ast.Constant):
            keys.add(node.args[0].value)
    body = _body(fn)
    types = Types(body, memory)
    for i, stmt in enumerate(body):
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Subscript) \
                and isinstance(stmt.targets[0].value, ast.Name) and stmt.targets[0].value.id == "state" \
                and isinstance(stmt.targets[0].slice, ast.Constant) and types.infer(stmt.value, types.before[i]) == "T":
            keys.add(stmt.targets[0].slice.value)
    return keys


# -- the operators ------------------------------------------------------------------------------
class Mutator:
    def __init__(self, memory: str, rng: random.Random, max_buffers: Optional[int] = None):
        self.memory = memory
        self.rng = rng
        self.max_buffers = max_buffers
        self.lib = function_library()

    def _over_buffers(self, code: str) -> bool:
        if self.max_buffers is None:
            return False
        fn = update_def(ast.parse(code))
        return fn is not None and len(tensor_slots(fn, self.memory)) > self.max_buffers

    # entry ------------------------------------------------------------------------------------
    def child(self, parent: str, kind: str, known: Callable[[str], bool], other: Optional[str] = None,
              tries: int = MAX_TRIES) -> Optional[Child]:
        """A new, gate-passing child of ``parent`` made by operator ``kind`` (``other``: crossover's
        second parent), or None when ``tries`` attempts made nothing new."""
        from symdisc.judge.gate import check_code

        if kind not in KINDS:
            raise ValueError(f"unknown mutation {kind!r} (one of {', '.join(KINDS)})")
        parent_hash = check_code(prune(parent), self.memory).ast_hash
        for _ in range(tries):
            try:
                made = self.apply(parent, kind, other)
            except (SyntaxError, ValueError, IndexError, RecursionError):
                made = None
            if made is None:
                continue
            code, detail = made
            try:
                code = prune(code)
            except SyntaxError:
                continue
            if not scales_with_lr(code):
                continue  # a step that is not zero at lr == 0 fails the probes: not worth a sandbox call
            if self._over_buffers(code):
                continue  # more tensor slots than the run allows: the sandbox would refuse it
            gated = check_code(code, self.memory)
            if not gated.verdict.ok or gated.ast_hash == parent_hash or known(gated.ast_hash):
                continue
            return Child(gated.normalized, kind, detail, gated.ast_hash)
        return None

    def apply(self, code: str, kind: str, other: Optional[str] = None) -> Optional[tuple[str, str]]:
        tree = ast.parse(code)
        fn = update_def(tree)
        if fn is None:
            return None
        if kind == "crossover":
            if other is None:
                return None
            detail = self._crossover(fn, other)
        else:
            operator = {"insert": self._insert, "state": self._state, "delete": self._delete,
                        "modify": self._modify, "swap": self._swap, "constant": self._constant_mutation}.get(kind)
            if operator is None:
                raise ValueError(f"unknown mutation {kind!r}")
            detail = operator(fn)
        if detail is None:
            return None
        tree.body = [s for s in tree.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        ast.fix_missing_locations(tree)
        return ast.unparse(tree) + "\n", detail

    # helpers ----------------------------------------------------------------------------------
    def _fresh(self, fn: ast.FunctionDef, stem: str = "v") -> str:
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | set(UPDATE_ARGS)
        i = 0
        while f"{stem}{i}" in used:
            i += 1
        return f"{stem}{i}"

    def _fresh_key(self, fn: ast.FunctionDef) -> str:
        used = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                used.add(node.value)
        i = 0
        while f"s{i}" in used:
            i += 1
        return f"s{i}"

    def _new_constant(self) -> float:
        return _num(self.rng.choice((0.5, 0.9, 0.99, 1.0, 2.0, 1e-8, 0.1, 1e-3)) * 2 ** self.rng.gauss(0, 1))

    def _uses(self, stmts: list, name_type: str, env_at: Callable[[int], dict], start: int):
        """(statement index, Name node) of loads of a ``name_type`` variable in stmts[start:]."""
        out = []
        for j in range(start, len(stmts)):
            env = env_at(j)
            for node in ast.walk(stmts[j]):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and env.get(node.id) == name_type:
                    out.append((j, node))
        return out

    def _expression(self, env: dict) -> Optional[tuple[ast.AST, str, list]]:
        """A random typed expression over ``env``: (node, type, names it reads)."""
        rng = self.rng
        tensors = [n for n, k in env.items() if k == "T"]
        scalars = [n for n, k in env.items() if k == "S"]
        options = []
        if tensors and self.lib["map1"]:
            options += ["map1"] * 3
        if tensors and self.lib["map2"]:
            options += ["map2"]
        if tensors:
            options += ["binop", "const", "reduce"]
            options += ["scale", "view"] if self.lib["reduce"] else ["view"]
        if scalars:
            options += ["sbinop", "sconst"] + (["smap1"] if self.lib["smap1"] else [])
        if not options:
            return None
        choice = rng.choice(options)
        if choice == "map1":
            a = rng.choice(tensors)
            # mostly odd functions: an even one in the step's path makes it ignore the gradient's sign
            pool = self.lib["odd"] if self.lib["odd"] and rng.random() < 0.7 else self.lib["map1"]
            return ast.parse(f"{rng.choice(pool)}({a})", mode="eval").body, "T", [a]
        if choice == "map2":
            a, b = rng.choice(tensors), rng.choice(tensors)
            return ast.parse(f"{rng.choice(self.lib['map2'])}({a}, {b})", mode="eval").body, "T", [a, b]
        op = rng.choice(("+", "-", "*", "/"))
        if choice == "binop":
            a, b = rng.choice(tensors), rng.choice(tensors + scalars)
            return ast.parse(f"{a} {op} {b}", mode="eval").body, "T", [a, b]
        if choice == "const":
            a = rng.choice(tensors)
            return ast.parse(f"{a} {rng.choice(('*', '+'))} {self._new_constant()!r}", mode="eval").body, "T", [a]
        if choice == "reduce" and self.lib["reduce"]:
            a = rng.choice(tensors)
            return ast.parse(f"{rng.choice(self.lib['reduce'])}({a}).item()", mode="eval").body, "S", [a]
        if choice == "scale":  # normalised by a statistic of a magnitude: |b| makes any reduce a scale
            a, b = rng.choice(tensors), rng.choice(tensors)
            source = f"{a} / ({rng.choice(self.lib['reduce'])}(torch.abs({b})) + {EPS!r})"
            return ast.parse(source, mode="eval").body, "T", [a, b]
        if choice == "view":  # rows x the rest (a bias is a column); rows (dim 1) or columns normalised
            a = rng.choice(tensors)
            view = f"{a}.reshape({a}.shape[0], -1)"
            source = (f"({view} / (torch.linalg.vector_norm({view}, dim={rng.choice((0, 1))}, keepdim=True) "
                      f"+ {EPS!r})).reshape_as({a})")
            return ast.parse(source, mode="eval").body, "T", [a]
        if choice == "sbinop" and scalars:
            a, b = rng.choice(scalars), rng.choice(scalars)
            return ast.parse(f"{a} {op} {b}", mode="eval").body, "S", [a, b]
        if choice == "smap1":
            a = rng.choice(scalars)
            return ast.parse(f"{rng.choice(self.lib['smap1'])}({a})", mode="eval").body, "S", [a]
        if scalars:
            a = rng.choice(scalars)
            return ast.parse(f"{a} {rng.choice(('*', '+'))} {self._new_constant()!r}", mode="eval").body, "S", [a]
        return None

    def _rewire(self, fn, body, types: Types, position: int, name: str, kind: str, prefer: list,
                extra_env: Optional[dict] = None) -> bool:
        """Make one later load of a ``kind`` variable read ``name`` instead (``prefer``: names to
        replace first). Later statements are those at ``position`` and after in ``body``."""
        def env_at(j):
            env = dict(types.before[j]) if j < len(types.before) else dict(types.after)
            env.update(extra_env or {})
            return env

        # lr stays the step's scale (a step that ignores lr fails the probes)
        uses = [u for u in self._uses(body, kind, env_at, position) if u[1].id not in (name, "lr")]
        if not uses:
            return False
        preferred = [u for u in uses if u[1].id in prefer]
        _, node = self.rng.choice(preferred or uses)
        node.id = name
        return True

    # operators --------------------------------------------------------------------------------
    def _insert(self, fn: ast.FunctionDef) -> Optional[str]:
        body = _body(fn)
        if not body:
            return None
        types = Types(body, self.memory)
        i = self.rng.randrange(len(body))  # before statement i (the return is last)
        tensors = [n for n, k in types.before[i].items() if k == "T"]
        if tensors and self.rng.random() < BLOCK_SHARE:
            return self._insert_block(fn, body, types, i, self.rng.choice(tensors))
        made = self._expression(types.before[i])
        if made is None:
            return None
        expr, kind, inputs = made
        name = self._fresh(fn)
        stmt = ast.parse(f"{name} = {ast.unparse(expr)}").body[0]
        if not self._rewire(fn, body, types, i, name, kind, inputs, {name: kind}):
            return None
        fn.body.insert(fn.body.index(body[i]), stmt)
        return f"insert {ast.unparse(stmt)}"

    def _insert_block(self, fn: ast.FunctionDef, body: list, types: Types, i: int, a: str) -> Optional[str]:
        """Statements before ``body[i]`` that orthogonalise ``a``'s matrix view (rows x the rest,
        the wide way round so the Gram matrix is the small one): scaled to Frobenius norm 1, then
        ``NS_STEPS`` Newton-Schulz iterations, then back to ``a``'s shape; a later use is rewired to
        the result. Names are rebound inside the block so that only two matrices are alive at once."""
        wide, x, gram, name = self._fresh(fn, "w"), self._fresh(fn, "x"), self._fresh(fn, "a"), self._fresh(fn)
        view = f"{a}.reshape({a}.shape[0], -1)"
        c1, c2, c3 = NS
        lines = [f"{wide} = {a}.shape[0] * {a}.shape[0] <= {a}.numel()",
                 f"{x} = {view} if {wide} else {view}.T",
                 f"{x} = {x} / (torch.norm({x}) + {EPS!r})"]
        for _ in range(NS_STEPS):
            lines += [f"{gram} = {x} @ {x}.T", f"{x} = {c1!r} * {x} + ({c2!r} * {gram} + {c3!r} * ({gram} @ {gram})) @ {x}"]
        lines.append(f"{name} = ({x} if {wide} else {x}.T).reshape_as({a})")
        stmts = ast.parse("\n".join(lines)).body
        if not self._rewire(fn, body, types, i, name, "T", [a], {name: "T"}):
            return None
        at = fn.body.index(body[i])
        fn.body[at:at] = stmts
        return f"insert orthogonalisation of {a} ({NS_STEPS} Newton-Schulz steps)"

    def _state(self, fn: ast.FunctionDef) -> Optional[str]:
        body = _body(fn)
        if not body:
            return None
        types = Types(body, self.memory)
        i = self.rng.randrange(len(body))
        env = types.before[i]
        pool = [n for n, k in env.items() if k in ("T", "S") and n not in ("lr",)]
        if not pool:
            return None
        a = self.rng.choice(pool)
        beta = _num(min(0.999, max(0.1, self.rng.choice((0.9, 0.99, 0.5)) * 2 ** (self.rng.gauss(0, 0.3)))))
        key, name = self._fresh_key(fn), self._fresh(fn, "m")
        source = a
        kind = env[a]
        full = self.max_buffers is not None and len(tensor_slots(fn, self.memory)) >= self.max_buffers
        if kind == "T" and (self.memory == SCALAR or full):
            source = f"{self.rng.choice(self.lib['reduce'])}({a}).item()" if self.lib["reduce"] else None
            kind = "S"
            if source is None:
                return None
        default = "torch.zeros_like(param)" if kind == "T" else "0.0"
        one_minus = _num(1 - beta)
        lines = ast.parse(f"{name} = {beta!r} * state.get({key!r}, {default}) + {one_minus!r} * {source}\n"
                          f"state[{key!r}] = {name}\n").body
        if not self._rewire(fn, body, types, i, name, kind, [a], {name: kind}):
            return None
        at = fn.body.index(body[i])
        fn.body[at:at] = lines
        return f"state slot {key}: average of {source}"

    def _delete(self, fn: ast.FunctionDef) -> Optional[str]:
        body = _body(fn)
        types = Types(body, self.memory)
        sites = [i for i, s in enumerate(body[:-1]) if isinstance(s, ast.Assign)]
        if not sites:
            return None
        i = self.rng.choice(sites)
        stmt = body[i]
        target = stmt.targets[0]
        if isinstance(target, ast.Name):
            kind = types.after.get(target.id) if i + 1 >= len(types.before) else types.before[i + 1].get(target.id)
            reads = [n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name)]
            substitutes = [n for n, k in types.before[i].items() if k == kind and k is not None and n != target.id]
            preferred = [n for n in substitutes if n in reads]
            if kind is None or not substitutes:
                return None
            sub = self.rng.choice(preferred or substitutes)
            for later in body[i + 1:]:
                rebinds = any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.id == target.id
                              for n in ast.walk(later))
                for node in ast.walk(later):
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id == target.id:
                        node.id = sub
                if rebinds:
                    break
        fn.body.remove(stmt)
        return f"delete {ast.unparse(stmt)[:60]}"

    def _modify(self, fn: ast.FunctionDef) -> Optional[str]:
        body = _body(fn)
        types = Types(body, self.memory)
        sites = []
        for j, stmt in enumerate(body):
            env = types.before[j]
            for node in ast.walk(stmt):
                if isinstance(node, ast.BinOp) and isinstance(node.op, BINOPS):
                    sites.append(("op", node, env))
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and env.get(node.id) \
                        and node.id != "lr":
                    sites.append(("arg", node, env))
        if not sites:
            return None
        what, node, env = self.rng.choice(sites)
        if what == "op":
            old = type(node.op)
            node.op = self.rng.choice([op for op in BINOPS if op is not old])()
            return f"operator {old.__name__} -> {type(node.op).__name__}"
        others = [n for n, k in env.items() if k == env[node.id] and n != node.id]
        if not others:
            return None
        old, node.id = node.id, self.rng.choice(others)
        return f"argument {old} -> {node.id}"

    def _swap(self, fn: ast.FunctionDef) -> Optional[str]:
        sites = []
        for node in ast.walk(fn):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                arity = len(node.args)
                for kind in ("map1", "reduce", "smap1") if arity == 1 else ("map2", "smap2") if arity == 2 else ():
                    if name in self.lib[kind] and len(self.lib[kind]) > 1:
                        sites.append((node, name, kind))
        if not sites:
            return None
        node, name, kind = self.rng.choice(sites)
        new = self.rng.choice([n for n in self.lib[kind] if n != name])
        node.func = ast.parse(new, mode="eval").body
        return f"function {name} -> {new}"

    def _constant_mutation(self, fn: ast.FunctionDef) -> Optional[str]:
        scale = {id(n) for n in step_scale_constants(fn)}
        sites = [n for n in constant_sites(fn) if id(n) not in scale]
        if not sites:
            return None
        node = self.rng.choice(sites)
        old = node.value
        node.value = _num(float(old) * 2 ** self.rng.gauss(0, 1))
        return f"constant {old!r} -> {node.value!r}"

    def _crossover(self, fn: ast.FunctionDef, other: str) -> Optional[str]:
        other_fn = update_def(ast.parse(other))
        if other_fn is None:
            return None
        donor = _body(other_fn)
        sites = [j for j, s in enumerate(donor[:-1]) if isinstance(s, ast.Assign) and len(s.targets) == 1
                 and isinstance(s.targets[0], ast.Name)]
        if not sites:
            return None
        j = self.rng.choice(sites)
        donor_types = Types(donor, self.memory)
        out_name = donor[j].targets[0].id
        out_kind = donor_types.before[j + 1].get(out_name)
        if out_kind is None:
            return None
        # the statements before j that statement j needs, transitively (its backward slice)
        needed = {n.id for n in ast.walk(donor[j].value) if isinstance(n, ast.Name)}
        picked = [j]
        for k in range(j - 1, -1, -1):
            stmt = donor[k]
            bound = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
            if bound & needed:
                picked.append(k)
                needed -= bound
                needed |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        picked.sort()
        # state writes of the keys the slice reads, so that its averages keep updating
        read_keys = set()
        for k in picked:
            for node in ast.walk(donor[k]):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "state" and node.args \
                        and isinstance(node.args[0], ast.Constant):
                    read_keys.add(node.args[0].value)
        for k in range(j + 1, len(donor) - 1):
            stmt = donor[k]
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Subscript) and isinstance(t.slice, ast.Constant)
                                                    and t.slice.value in read_keys for t in stmt.targets):
                picked.append(k)
        pieces = [copy.deepcopy(donor[k]) for k in sorted(set(picked))]
        # rename the donor's locals and state keys apart from the receiver's
        taken = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | set(UPDATE_ARGS)
        own_keys = {n.value for n in ast.walk(fn) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        renames, rekeys = {}, {}
        for piece in pieces:
            for node in ast.walk(piece):
                if isinstance(node, ast.Name) and node.id not in UPDATE_ARGS and node.id not in ("torch", "math") \
                        and node.id not in _BUILTIN_NAMES:
                    if node.id not in renames:  # the receiver's naming: v0, v1, ... (x0, a0 ... keep their stem)
                        stem = node.id.rstrip("0123456789_") or "v"
                        k = 0
                        while f"{stem}{k}" in taken:
                            k += 1
                        renames[node.id] = f"{stem}{k}"
                        taken.add(renames[node.id])
                    node.id = renames[node.id]
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in own_keys:
                    rekeys.setdefault(node.value, node.value + "_x")
                    node.value = rekeys[node.value]
        body = _body(fn)
        types = Types(body, self.memory)
        new_name = renames.get(out_name, out_name)
        # the slice reads only update's arguments now, so it may stand before any statement
        at_stmt = self.rng.randrange(len(body))
        if not self._rewire(fn, body, types, at_stmt, new_name, out_kind, [], {new_name: out_kind}):
            return None
        at = fn.body.index(body[at_stmt])
        fn.body[at:at] = pieces
        return f"crossover: {ast.unparse(donor[j])[:60]}"
