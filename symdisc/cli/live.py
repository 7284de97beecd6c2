"""The live view of `symdisc evolve` on stderr: progress toward the budget, leaderboard, rejections, speed.

On a terminal it redraws a rich Live panel (the clock and the estimate tick between candidates; the
tables are read from the store on each event, in the loop's thread, never from rich's refresh
thread); elsewhere (a log file, CI) it prints one line per candidate, so the output stays readable
as a log.
"""

from __future__ import annotations

import time
from typing import Optional


def _first_line(code: str | None) -> str:
    """The rule's return expression, the most telling single line."""
    for line in reversed((code or "").splitlines()):
        s = line.strip()
        if s.startswith("return "):
            return s[7:67]
    return ""


def clock(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def budget_progress(budget: dict, done: dict) -> dict:
    """How far a run is toward whichever of its budgets ends it first.

    ``budget``: candidates, minutes, evaluations (None where not set); ``done``: candidates,
    evaluations and elapsed_s so far. Returns fraction (0..1), a label, and eta_s (None before
    anything can be estimated).
    """
    parts, fractions, etas = [], [], []
    elapsed = done.get("elapsed_s") or 0.0
    for key, unit in (("candidates", "candidates"), ("evaluations", "evaluations")):
        total = budget.get(key)
        if total:
            n = done.get(key) or 0
            parts.append(f"{n}/{total} {unit}")
            fractions.append(min(1.0, n / total))
            if n > 0:
                etas.append(max(0.0, elapsed / n * (total - n)))
    if budget.get("minutes"):
        total_s = budget["minutes"] * 60
        parts.append(f"{elapsed / 60:.1f}/{budget['minutes']:g} min")
        fractions.append(min(1.0, elapsed / total_s))
        etas.append(max(0.0, total_s - elapsed))
    return {"fraction": max(fractions) if fractions else 0.0, "label": " | ".join(parts) or "no budget",
            "eta_s": min(etas) if etas else None}


class EvolveView:
    def __init__(self, store, run_id_getter, console=None):
        from symdisc.cli.base import console as make_console

        self.console = console or make_console(stderr=True)
        self.store = store
        self.run_id = run_id_getter
        self.live = None
        self.last = {}
        self.status = "starting"
        self.started = time.monotonic()
        self.elapsed_at_event = 0.0  # the run's elapsed_s (resumed runs included) at the last event
        self.event_clock = time.monotonic()
        self.budget: dict = {}
        self.tables = None

    def __enter__(self):
        if self.console.is_terminal:
            from rich.live import Live

            self._refresh_tables()
            self.live = Live(self, console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self._refresh_tables()
            self.live.refresh()
            self.live.__exit__(*exc)

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "start":
            self.status = f"run {data['run_id']}"
            config = data.get("config")
            if config is not None:
                self.budget = {k: getattr(config, k, None) for k in ("candidates", "minutes", "evaluations")}
            if self.live is None:
                self.console.print(f"symdisc: run {data['run_id']} started ({self._progress()['label']})",
                                   highlight=False)
        elif kind == "generating":
            self.status = f"generating candidate {data['seq']}"
        elif kind == "resumed":
            self.status = f"re-judging stored reply {data['seq']}"
        elif kind == "candidate":
            self._note(data["summary"])
            row = data["row"]
            if self.live is None:
                verdict = f"{row['fitness']:.4f}" if row["status"] == "evaluated" else f"{row['status']} {row['reason']}"
                p = self._progress()
                self.console.print(f"  #{row['seq']:<4} {row['origin']:<5} {verdict:<24} [{p['label']}, "
                                   f"elapsed {clock(self._elapsed())}, left ~{clock(p['eta_s'])}]", highlight=False)
        elif kind == "end":
            self._note(data["summary"])
            self.status = data["status"]
        if self.live is not None:
            self._refresh_tables()
            self.live.refresh()

    def _note(self, summary: dict) -> None:
        self.last = summary
        self.elapsed_at_event = float(summary.get("elapsed_s") or 0.0)
        self.event_clock = time.monotonic()

    def _elapsed(self) -> float:
        if self.status in ("finished", "interrupted", "failed"):
            return self.elapsed_at_event
        return self.elapsed_at_event + (time.monotonic() - self.event_clock)

    def _progress(self) -> dict:
        done = {"candidates": self.last.get("candidates", 0), "elapsed_s": self._elapsed()}
        if self.budget.get("evaluations"):
            done["evaluations"] = self._evaluations  # read in _refresh_tables, in the loop's thread
        return budget_progress(self.budget, done)

    _evaluations = 0

    def _refresh_tables(self) -> None:
        """The store's tables, read here in the loop's thread (SQLite connections stay in their thread)."""
        from rich.table import Table

        run_id = self.run_id()
        board = Table(title="leaderboard: the highest cascade stage reached, then the score there", expand=False)
        for col in ("id", "held-out", "proxy", "origin", "state", "rule"):
            board.add_column(col, justify="right" if col in ("id", "held-out", "proxy") else "left")
        rejections = Table(title="rejections and failures", expand=False)
        rejections.add_column("reason")
        rejections.add_column("count", justify="right")
        if run_id:
            for row in self.store.leaderboard(run_id, 5):
                state = f"{row['state_scalars'] or 0} sc" if not row["state_bytes"] or row["state_bytes"] <= 128 \
                    else f"{row['state_bytes']} B"
                heldout = f"{row['heldout']:.4f}" if row.get("heldout") is not None else ""
                board.add_row(str(row["id"]), heldout, f"{row['fitness']:.4f}", row["name"] or row["origin"], state,
                              _first_line(row["normalized"]))
            for reason, count in list(self.store.reason_counts(run_id).items())[:8]:
                rejections.add_row(reason, str(count))
            if self.budget.get("evaluations"):
                self._evaluations = self.store.evaluated_count(run_id)
        self.tables = (board, rejections)

    def __rich__(self):
        return self._render()

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        if self.tables is None:
            self._refresh_tables()
        p = self._progress()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(ProgressBar(total=1.0, completed=p["fraction"], width=40), f"{p['fraction'] * 100:3.0f}%",
                    p["label"], f"elapsed {clock(self._elapsed())}",
                    "done" if self.status in ("finished", "interrupted", "failed") else f"left ~{clock(p['eta_s'])}")
        s = self.last
        speed = (f"{s.get('candidates', 0)} candidates, {s.get('passed_gate', 0)} passed the gate | "
                 f"{s.get('tokens_per_s') or 0:.1f} tok/s | {s.get('candidates_per_min') or 0:.1f} cand/min")
        return Group(f"[bold]symdisc evolve[/bold] {self.status}", bar, speed, *self.tables)

