"""Turn a language model's raw reply into candidate source code.

Models wrap code in Markdown fences, add prose before and after, emit several blocks, stop
mid-function, or mix tabs and spaces. This module finds the code; it never judges it (the gate does).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Optional

MAX_REPLY_CHARS = 200_000

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([\w+-]*)[^\n]*\n", re.MULTILINE)
_CODE_START = re.compile(r"^(def |import |from |@|[A-Za-z_][A-Za-z0-9_]*\s*=[^=])")


@dataclass
class Extraction:
    code: Optional[str]
    reason: Optional[str] = None  # "empty" | "junk" | "no_code" when code is None
    message: Optional[str] = None
    truncated: bool = False  # an opening fence without its closing fence


def _fenced_blocks(text: str) -> list[tuple[str, bool]]:
    """All fenced blocks as (body, closed). An unclosed last fence runs to the end of the text."""
    blocks = []
    pos = 0
    while True:
        m = _FENCE.search(text, pos)
        if not m:
            break
        fence = m.group(1)
        close = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{%d,}[ \t]*$" % len(fence), re.MULTILINE)
        end = close.search(text, m.end())
        if end is None:
            blocks.append((text[m.end():], False))
            break
        blocks.append((text[m.end():end.start()], True))
        pos = end.end()
    return blocks


def _bare_code(text: str) -> Optional[str]:
    """Code without fences: from the first code-looking line, keep lines until unindented prose."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if _CODE_START.match(ln)), None)
    if start is None:
        return None
    kept = []
    for ln in lines[start:]:
        if ln.strip() == "" or ln[:1] in (" ", "\t", "#", ")", "]", "}") or _CODE_START.match(ln):
            kept.append(ln)
            continue
        if ln.startswith(("return ", "else", "elif ")):  # a model that forgot to indent
            kept.append(ln)
            continue
        break  # unindented prose after the code
    return "\n".join(kept)


def extract_code(reply: str) -> Extraction:
    if reply is None or not reply.strip():
        return Extraction(None, "empty", "the reply is empty")
    if "\x00" in reply or re.search(r"[\x01-\x08\x0b\x0e-\x1f]", reply):
        return Extraction(None, "junk", "the reply contains NUL or control bytes")
    if len(reply) > MAX_REPLY_CHARS:
        reply = reply[:MAX_REPLY_CHARS]
    text = reply.replace("\r\n", "\n").replace("\r", "\n")

    blocks = _fenced_blocks(text)
    truncated = False
    code = None
    if blocks:
        with_update = [b for b in blocks if re.search(r"^\s*def\s+update\s*\(", b[0], re.MULTILINE)]
        # Prefer the last complete block that defines update: models revise themselves.
        closed = [b for b in with_update if b[1]]
        chosen = closed[-1] if closed else (with_update[-1] if with_update else blocks[0])
        code, truncated = chosen[0], not chosen[1]
    else:
        code = _bare_code(text)
    if code is None or not code.strip():
        return Extraction(None, "no_code", "no Python code was found in the reply")
    # Tabs mixed with spaces are a TabError in Python; a model means 4 spaces by a tab.
    code = "\n".join(ln.expandtabs(4).rstrip() for ln in code.split("\n")).strip("\n") + "\n"
    code = strip_slash_comments(code)
    return Extraction(code, truncated=truncated)


def _parses(text: str) -> bool:
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return True


def strip_slash_comments(code: str) -> str:
    """C-style `// comment`s, which the grammar's ban on `#` makes qwen2.5-coder-1.5b write.

    Only where the code does not parse as it is, and only a `//` whose line parses without the rest
    of it (tried from the last `//` backwards, so `a // 2  // halve` keeps its floor division); a
    line that is nothing but a `//` comment goes. Code that parses is never touched.
    """
    if "//" not in code:
        return code
    if _parses(code):
        return _strip_one_word_comments(code)
    out = []
    for ln in code.split("\n"):
        body = ln.strip()
        if body.startswith("//"):
            continue
        if "//" in body and not _parses(_as_statement(body)):
            cuts = [m.start() for m in re.finditer("//", ln)]
            for cut in reversed(cuts):
                head = ln[:cut].rstrip()
                if head.strip() and _parses(_as_statement(head.strip())):
                    ln = head
                    break
        out.append(ln)
    fixed = "\n".join(out)
    return _strip_one_word_comments(fixed) if _parses(fixed) else code


_ONE_WORD = re.compile(r"\s//\s*([A-Za-z_]\w*)\s*$")


def _strip_one_word_comments(code: str) -> str:
    """`return x  // decay` parses (a floor division by `decay`); where the word is a name that the
    code never binds, it was a comment."""
    bound = {"torch", "math", "abs", "min", "max", "float", "int", "round", "len", "range", "bool"}
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.FunctionDef):
            bound.add(node.name)
    out = []
    for ln in code.split("\n"):
        m = _ONE_WORD.search(ln)
        if m and m.group(1) not in bound and _parses(_as_statement(ln[:m.start()].strip() or "pass")):
            ln = ln[:m.start()].rstrip()
        out.append(ln)
    fixed = "\n".join(out)
    return fixed if _parses(fixed) else code


def _as_statement(line: str) -> str:
    """A line of a function body as a statement that parses alone (`return`, `if ...:` and the like)."""
    if line.endswith(":"):
        return line + " pass"
    return line
