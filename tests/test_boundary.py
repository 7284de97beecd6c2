"""The security boundary, written down: what runs in (or judges for) the sandbox imports nothing
from the search, the bench, the command line, the model backends or the run database.

Checked on the source, transitively: a module of judge/ that imported symdisc.search would pull
the loop, the store and the backends into the locked-down worker's reach.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "symdisc"
FORBIDDEN = ("symdisc.search", "symdisc.bench", "symdisc.cli", "symdisc.llm", "symdisc.store")


def _module_file(name: str):
    parts = name.split(".")
    path = ROOT.joinpath(*parts)
    if (path / "__init__.py").exists():
        return path / "__init__.py"
    if path.with_suffix(".py").exists():
        return path.with_suffix(".py")
    return None


def _imports(path: Path) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import; symdisc uses absolute imports only")
    return {n for n in names if n == "symdisc" or n.startswith("symdisc.")}


def _closure(start: Path) -> dict:
    """Every symdisc module reachable from ``start`` by imports -> the module that first imported it."""
    seen, todo = {}, [(start, None)]
    while todo:
        path, via = todo.pop()
        for name in _imports(path):
            if name in seen:
                continue
            seen[name] = via or path.name
            target = _module_file(name)
            if target is not None:
                todo.append((target, name))
    return seen


def _judge_sources():
    return sorted((PACKAGE / "judge").glob("*.py")) + [ROOT / "sandbox" / "worker.py"]


def test_judge_and_worker_import_nothing_outside_the_boundary():
    assert len(_judge_sources()) > 10  # the rooms exist where this test looks
    for source in _judge_sources():
        reached = _closure(source)
        bad = {name: via for name, via in reached.items() if name.startswith(FORBIDDEN)}
        assert not bad, f"{source.relative_to(ROOT)} reaches {bad}"


def test_the_boundary_check_sees_a_violation(tmp_path, monkeypatch):
    # The check itself can fail: a judge module that imports the store is caught, even through a helper.
    helper = tmp_path / "symdisc" / "judge" / "helper.py"
    helper.parent.mkdir(parents=True)
    helper.write_text("from symdisc.store import Store\n")
    (tmp_path / "symdisc" / "judge" / "__init__.py").write_text("")
    (tmp_path / "symdisc" / "__init__.py").write_text("")
    bad = tmp_path / "symdisc" / "judge" / "bad.py"
    bad.write_text("from symdisc.judge import helper\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    reached = _closure(bad)
    assert "symdisc.store" in reached
