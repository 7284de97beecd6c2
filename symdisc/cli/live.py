"""The live view of `symdisc evolve` on stderr: progress toward the budget, leaderboard, rejections, speed,
and what each operator proposed (new programs, improvements, seconds).

On a terminal it redraws a rich Live panel (the clock and the estimate tick between candidates; the
tables are read from the store on each event, in the loop's thread, never from rich's refresh
thread; the per-operator numbers are a running tally of the candidates the loop reports); elsewhere
(a log file, CI) it prints one line per candidate and the per-operator tally as one line at the end,
so the output stays readable as a log.
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


PROPOSAL_FIELDS = ("replies", "new", "repeats", "improvements", "seconds")


class ProposalTally:
    """Per operator and per model: replies, new programs, repeats, improvements on the parent and
    seconds, counted from the candidates the loop reports, as ``Store.proposal_stats`` counts them
    from the table (loaded from it once when a resumed run starts). ``parent_fitness(id)`` answers
    for a parent this tally has not seen (a seed, a program of an earlier session)."""

    def __init__(self, parent_fitness):
        self.parent_fitness = parent_fitness
        self.stats: dict = {"operator": {}, "model": {}}
        self.fitness: dict = {}  # proposed candidates' proxy fitness by id, as they were reported

    def load(self, stats: dict) -> None:
        self.stats = {by: {k: dict(v) for k, v in stats.get(by, {}).items()} for by in ("operator", "model")}

    def add(self, row: dict) -> None:
        if row["origin"] == "seed" or row["status"] == "pending":
            return  # a seed's score can still be restandardised: its parents' fitness is read when needed
        self.fitness[row["id"]] = row.get("fitness")
        new = row["status"] == "evaluated"
        improved = False
        if new and row.get("parent_id") is not None and row.get("fitness") is not None:
            parent = row["parent_id"]
            if parent not in self.fitness:
                self.fitness[parent] = self.parent_fitness(parent)
            improved = self.fitness[parent] is not None and row["fitness"] > self.fitness[parent]
        seconds = sum((row.get(k) or 0.0) for k in ("gen_ms", "gate_ms", "eval_ms")) / 1000.0
        for by in ("operator", "model"):
            key = row.get(by)
            if key is None:
                continue
            st = self.stats[by].setdefault(key, dict.fromkeys(PROPOSAL_FIELDS, 0))
            st["replies"] += 1
            st["new"] += int(new)
            st["repeats"] += int(row["status"] == "duplicate")
            st["improvements"] += int(improved)
            st["seconds"] += seconds

    def line(self, by: str = "operator") -> str:
        """One line: each key's new programs, improvements and seconds."""
        return "; ".join(f"{k} {st['new']} new, {st['improvements']} improved, {st['seconds']:.1f} s"
                         for k, st in sorted(self.stats[by].items()))

    def table(self, by: str = "operator", limit: int = 10):
        from rich.table import Table

        table = Table(title=f"by {by}: new programs, improvements on the parent, seconds spent", expand=False)
        for col in (by, "replies", "new", "repeats", "improved", "seconds", "new/min"):
            table.add_column(col, justify="left" if col == by else "right")
        ranked = sorted(self.stats[by].items(), key=lambda kv: (-kv[1]["new"], kv[0]))
        for key, st in ranked[:limit]:
            rate = f"{st['new'] * 60 / st['seconds']:.1f}" if st["seconds"] > 0 else ""
            table.add_row(str(key), str(st["replies"]), str(st["new"]), str(st["repeats"]), str(st["improvements"]),
                          f"{st['seconds']:.1f}", rate)
        if len(ranked) > limit:
            table.add_row(f"(+{len(ranked) - limit} more)", "", "", "", "", "", "")
        return table


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
        self.tally = ProposalTally(self._stored_fitness)

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
            # a resumed run's earlier candidates, read once; the loop's thread, like every store read here
            self.tally.load({by: self.store.proposal_stats(data["run_id"], by) for by in ("operator", "model")})
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
            self.tally.add(row)
            if self.live is None:
                verdict = f"{row['fitness']:.4f}" if row["status"] == "evaluated" else f"{row['status']} {row['reason']}"
                p = self._progress()
                source = row["origin"] + (f"/{row['operator']}" if row.get("operator") else "")
                self.console.print(f"  #{row['seq']:<4} {source:<16} {verdict:<24} [{p['label']}, "
                                   f"elapsed {clock(self._elapsed())}, left ~{clock(p['eta_s'])}]", highlight=False)
        elif kind == "end":
            self._note(data["summary"])
            self.status = data["status"]
            if self.live is None and self.tally.stats["operator"]:
                self.console.print(f"symdisc: by operator: {self.tally.line()}", highlight=False)
        if self.live is not None:
            self._refresh_tables()
            self.live.refresh()

    def _stored_fitness(self, candidate_id: int):
        return self.store.get_candidate(candidate_id).get("fitness")

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
        tables = [board, rejections]
        # the tally's tables are drawn here too, so rich's refresh thread never reads a dict being filled
        if self.tally.stats["operator"]:
            tables.append(self.tally.table("operator"))
        if len(self.tally.stats["model"]) > 1:
            tables.append(self.tally.table("model"))
        self.tables = tuple(tables)

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

