"""The `symdisc` command: typer commands that parse, call and print. Nothing else lives here.

Each group of commands is a module beside this one; importing them registers them on ``app``.
Every error of the SymdiscError hierarchy becomes one line and an exit code; SYMDISC_DEBUG=1
re-raises for a traceback.
"""

from __future__ import annotations

import os
import sys

from symdisc.cli import bench, calibrate, check, evolve, runs, task, view  # noqa: F401  (registers the commands)
from symdisc.cli.base import app
from symdisc.errors import SymdiscError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: one-line errors with exit code 1 (2 for usage errors); typer handles the rest."""
    try:
        app()
    except SymdiscError as err:
        if os.environ.get("SYMDISC_DEBUG"):
            raise
        sys.stderr.write(f"symdisc: error: {err}\n")
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("symdisc: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
