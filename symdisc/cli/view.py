"""`symdisc report` and `symdisc ui`: a run as a page, saved to a file or served on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from symdisc.errors import UsageError
from symdisc.cli.base import _open_store, _stderr, app


@app.command()
def report(
    run_id: str = typer.Argument(..., help="A run id, a unique prefix, or latest."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="The HTML file (default: report-RUN_ID.html)."),
) -> None:
    """Write one self-contained HTML page of a run (charts, lineage, every candidate); it works offline."""
    from symdisc.view.html import page
    from symdisc.view.report import run_data

    store = _open_store()
    run = store.get_run(run_id)
    data = run_data(store, run["id"])
    out = output or Path(f"report-{run['id']}.html")
    try:
        out.write_text(page(data), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    _stderr().print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(data['candidates'])} candidates)",
                    highlight=False)


@app.command()
def ui(
    port: int = typer.Option(8765, "--port", help="Port on 127.0.0.1 (0: any free port)."),
    verbose: bool = typer.Option(False, "--verbose", help="Log every request to stderr."),
) -> None:
    """Serve every run's page on 127.0.0.1 (a running run's page redraws as candidates arrive); Ctrl-C stops it."""
    from symdisc.store import default_db_path
    from symdisc.view.server import make_server

    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, not {port}")
    _open_store().close()  # a missing or unreadable database fails here, with its one-line message
    try:
        server = make_server(default_db_path(), port, quiet=not verbose)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    host, bound = server.server_address[:2]
    err = _stderr()
    err.print(f"symdisc ui: http://{host}:{bound}/  (runs in {default_db_path()}; Ctrl-C stops it)", highlight=False)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        err.print("symdisc ui: stopped", highlight=False)
    finally:
        server.server_close()
