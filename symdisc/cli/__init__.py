"""The `symdisc` command line: ``app.py`` assembles the commands, one module per group beside it."""


def main() -> None:
    """The console script's entry point (imports typer and the commands only when called)."""
    from symdisc.cli.app import main as run

    run()
