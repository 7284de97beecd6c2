"""Normalization and hashing of gated source: deduplication, not gating.

Two programs that differ only in local names, comments, docstrings, imports or formatting get the
same hash, so the search can tell a repeat from a new program without running it.
"""

from __future__ import annotations

import ast
import hashlib


def canonical_hash(nodes: list, keep: set) -> str:
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


def strip_imports(code: str, tree: ast.Module) -> str:
    """The source without its `import torch`/`import math` lines (the sandbox provides both)."""
    lines = code.split("\n")
    for stmt in tree.body:
        if isinstance(stmt, ast.Import):
            for i in range(stmt.lineno - 1, stmt.end_lineno):
                lines[i] = ""
    return "\n".join(lines).strip("\n") + "\n"

