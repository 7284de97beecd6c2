"""Built-in update rules written to the candidate contract, as plain source files.

They are read as text (never imported): the same source goes through the gate and the sandbox as a
model's candidate would, and seeds the program database of every run.
"""

from __future__ import annotations

from pathlib import Path

from symdisc.contract import BUFFERS, SCALAR

_HERE = Path(__file__).resolve().parent

# Which built-ins seed a run of each memory class.
SEEDS = {
    SCALAR: ("sgd", "sign_sgd", "robust_zero_state"),
    BUFFERS: ("sgd", "sign_sgd", "robust_zero_state", "momentum"),
}


def names() -> list[str]:
    return sorted(p.stem for p in _HERE.glob("*.py") if p.stem != "__init__")


def source(name: str) -> str:
    path = _HERE / f"{name.replace('-', '_')}.py"
    if not path.exists() or path.stem == "__init__":
        raise KeyError(name)
    return path.read_text()
