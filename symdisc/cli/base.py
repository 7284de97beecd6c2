"""The typer app and what every command shares: consoles, JSON output, reading a source file.

Results go to stdout, progress and logs to stderr. torch and llama_cpp are imported inside the
commands that need them, so listings answer instantly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from symdisc.errors import UsageError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Symbolic discovery of neural-network optimizers with a local LLM, on a CPU.")


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    """Symbolic discovery of neural-network optimizers with a local LLM, on a CPU."""
    if version:
        from symdisc import __version__

        typer.echo(__version__)
        raise typer.Exit(0)


# Without a terminal (a log file, CI, `| tee`), rich would lay everything out for 80 columns and wrap
# each long line onto the next. There every print is one unwrapped line and a table takes its natural
# width, as pip and tqdm write to logs.
LOG_WIDTH = 10_000


def console(stderr: bool = False):
    """A rich console for stdout or stderr: rich's own on a terminal, one line per print elsewhere."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=LOG_WIDTH, soft_wrap=True)


def _stderr():
    return console(stderr=True)


def _stdout():
    return console(stderr=False)


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
    from symdisc.contract import MEMORY_CLASSES

    if value not in MEMORY_CLASSES:
        raise UsageError(f"--memory must be one of {', '.join(MEMORY_CLASSES)}, not {value!r}")
    return value


def _open_store(create: bool = False):
    from symdisc.store import Store

    return Store(create=create)


def _heldout_available(say) -> bool:
    from symdisc.data import locate

    if locate("fashion-mnist") is None:
        say("funnel off: the held-out stage needs Fashion-MNIST (see `symdisc data status`)")
        return False
    return True
