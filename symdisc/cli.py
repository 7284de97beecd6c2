"""The `symdisc` command: typer commands that parse, call and print. Nothing else lives here.

Results go to stdout, progress and logs to stderr. Every error of the SymdiscError hierarchy
becomes one line and an exit code; SYMDISC_DEBUG=1 re-raises for a traceback. torch and
llama_cpp are imported inside the commands that need them, so listings answer instantly.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import SymdiscError, UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Symbolic discovery of neural-network optimizers with a local LLM, on a CPU.")


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Symbolic discovery of neural-network optimizers with a local LLM, on a CPU."""
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _stdout():
    from rich.console import Console

    return Console()


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such file: {path}")
    if p.is_dir():
        raise UsageError(f"{path} is a folder, not a Python file")
    try:
        return p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _memory_option(value: str) -> str:
    from .contract import MEMORY_CLASSES

    if value not in MEMORY_CLASSES:
        raise UsageError(f"--memory must be one of {', '.join(MEMORY_CLASSES)}, not {value!r}")
    return value


@app.command()
def check(
    path: str = typer.Argument(..., help="A candidate .py file, or - for stdin (raw model output is fine)."),
    memory: str = typer.Option("scalar", "--memory", "-m", help="Memory class: scalar (O(1)) or buffers."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    timeout: float = typer.Option(30.0, help="Wall-clock limit for the sandbox, in seconds."),
) -> None:
    """Run a candidate through the gate, the sandbox and the stage 0 probes."""
    from .checking import check_candidate

    memory = _memory_option(memory)
    source = _read_source(path)
    outcome = check_candidate(source, memory, timeout_s=timeout)
    if as_json:
        _print_json(outcome)
    else:
        out = _stdout()
        if outcome["ok"]:
            out.print(f"[green]accepted[/green] ({outcome['memory_class']}, "
                      f"{outcome['state_scalars']} state scalar(s))")
        else:
            line = f" (line {outcome['line']})" if outcome.get("line") else ""
            out.print(f"[red]rejected[/red] at {outcome['stage']}: {outcome['reason']}: "
                      f"{outcome['message']}{line}", highlight=False, soft_wrap=True)
        timings = ", ".join(f"{k} {v:.1f} ms" for k, v in outcome["ms"].items() if v is not None)
        _stderr().print(f"[dim]{timings}[/dim]")
    raise typer.Exit(0 if outcome["ok"] else 1)


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
