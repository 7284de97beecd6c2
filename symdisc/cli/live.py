"""The live view of `symdisc evolve` on stderr: leaderboard, rejections by reason, speed.

On a terminal it redraws a rich Live panel; elsewhere (a log file, CI) it prints one line per
candidate, so the output stays readable as a log.
"""

from __future__ import annotations

import time


def _first_line(code: str | None) -> str:
    """The rule's return expression, the most telling single line."""
    for line in reversed((code or "").splitlines()):
        s = line.strip()
        if s.startswith("return "):
            return s[7:67]
    return ""


class EvolveView:
    def __init__(self, store, run_id_getter, console=None):
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.store = store
        self.run_id = run_id_getter
        self.live = None
        self.last = {}
        self.status = "starting"
        self.started = time.monotonic()

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "start":
            self.status = f"run {data['run_id']}"
            if self.live is None:
                self.console.print(f"symdisc: run {data['run_id']} started", highlight=False)
        elif kind == "generating":
            self.status = f"generating candidate {data['seq']}"
        elif kind == "resumed":
            self.status = f"re-judging stored reply {data['seq']}"
        elif kind == "candidate":
            self.last = data["summary"]
            row = data["row"]
            if self.live is None:
                verdict = f"{row['fitness']:.4f}" if row["status"] == "evaluated" else f"{row['status']} {row['reason']}"
                self.console.print(f"  #{row['seq']:<4} {row['origin']:<5} {verdict}", highlight=False)
        elif kind == "end":
            self.last = data["summary"]
            self.status = data["status"]
        if self.live is not None:
            self.live.update(self._render())

    def _render(self):
        from rich.console import Group
        from rich.table import Table

        run_id = self.run_id()
        board = Table(title="leaderboard (proxy fitness)", expand=False)
        for col in ("id", "fitness", "origin", "state", "rule"):
            board.add_column(col)
        rejections = Table(title="rejections", expand=False)
        rejections.add_column("reason")
        rejections.add_column("count", justify="right")
        if run_id:
            for row in self.store.leaderboard(run_id, 5):
                state = f"{row['state_scalars'] or 0} sc" if not row["state_bytes"] or row["state_bytes"] <= 128 \
                    else f"{row['state_bytes']} B"
                board.add_row(str(row["id"]), f"{row['fitness']:.4f}", row["name"] or row["origin"], state,
                              _first_line(row["normalized"]))
            for reason, count in list(self.store.reason_counts(run_id).items())[:8]:
                rejections.add_row(reason, str(count))
        s = self.last
        speed = (f"{s.get('candidates', 0)} candidates, {s.get('passed_gate', 0)} passed the gate | "
                 f"{s.get('tokens_per_s') or 0:.1f} tok/s | {s.get('candidates_per_min') or 0:.1f} cand/min | "
                 f"{s.get('elapsed_s', 0):.0f} s")
        return Group(f"[bold]symdisc evolve[/bold] {self.status}", speed, board, rejections)

