"""Where the files that are not Python modules live: prompts and the sandbox worker.

In a checkout (or an editable install) they sit at the repository's top level; a wheel carries
copies under ``symdisc/_bundled/`` (see ``pyproject.toml``'s force-include).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parent
_BUNDLED = _PACKAGE / "_bundled"


def _find(name: str) -> Path:
    for base in (_BUNDLED, _CHECKOUT):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"symdisc's {name}/ folder is missing from the installation")


def sandbox_worker_path() -> Path:
    return _find("sandbox") / "worker.py"


def prompts_dir() -> Path:
    """``SYMDISC_PROMPTS`` points at a user's own copy of the prompts."""
    override = os.environ.get("SYMDISC_PROMPTS")
    return Path(override) if override else _find("prompts")


def symdisc_home() -> Path:
    """Run data: ``SYMDISC_HOME``, else ``runs/`` in the current directory."""
    return Path(os.environ.get("SYMDISC_HOME") or Path.cwd() / "runs")
