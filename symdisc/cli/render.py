"""Rich renderers of what the commands print on stdout: leaderboards and result tables."""

from __future__ import annotations

from symdisc.cli.base import _stdout


def print_leaderboard(store, run_id: str, limit: int = 10) -> None:
    from rich.table import Table

    from symdisc.store import fidelity_of, rank_score, tiers

    table = Table(title=f"run {run_id}: leaderboard (by the highest cascade stage reached, then the score there; "
                        "'=' places are ties within the noise band)")
    for col in ("place", "id", "stage", "rank score ± band", "proxy", "held-out", "best lr", "origin", "state", "audit"):
        table.add_column(col)
    rows = store.leaderboard(run_id, limit)
    places = tiers(rows)
    stage_names = {1: "proxy", 2: "heldout", 3: "long"}
    for i, row in enumerate(rows):
        state = f"{row['state_scalars'] or 0} scalars" if (row["state_bytes"] or 0) <= 128 else f"{row['state_bytes']} B"
        heldout = f"{row['heldout']:.4f}" if row.get("heldout") is not None else ""
        tied = places.count(places[i]) > 1
        band = f" ± {row['rank_band']:.4f}" if row.get("rank_band") else ""
        audit = f"{row['audit']:.4f}" if row.get("audit") is not None else ""
        table.add_row(f"{'=' if tied else ''}{places[i]}", str(row["id"]), stage_names.get(fidelity_of(row), "proxy"),
                      f"{rank_score(row):.4f}{band}", f"{row['fitness']:.4f}", heldout,
                      f"{row['best_lr']:g}" if row["best_lr"] else "", row["name"] or row["origin"], state, audit)
    _stdout().print(table)


def print_compare(report: dict) -> None:
    from rich.table import Table

    budget = (f"{report['minutes']:g} minutes" if report.get("minutes") is not None
              else f"{report['evaluations']} evaluations")
    table = Table(title=f"symdisc compare {report['id']}: best proxy fitness after % of {budget} "
                        f"(mean ± std over repeats)")
    for col in ("strategy", "10%", "25%", "50%", "100%", "best held-out", "own best", "evaluated", "wall s"):
        table.add_column(col)
    for name, row in report["table"].items():
        cells = []
        for key in ("10%", "25%", "50%", "100%"):
            c = row[key]
            cells.append(f"{c['mean']:.4f} ± {c['std']:.4f}" if c["mean"] is not None else "")
        held = f"{row['best_heldout_mean']:.4f}" if row["best_heldout_mean"] is not None else "none promoted"
        table.add_row(name, *cells, held, f"{row.get('own_best', 0)}/{row['repeats']}",
                      f"{row.get('evaluated_mean', row['candidates_mean']):.0f}", f"{row['wall_s_mean']:.0f}")
    out_console = _stdout()
    out_console.print(table)
    for name, runs in report.get("results", {}).items():
        for r in runs:
            b = r.get("best")
            if b:
                what = b["name"] or f"candidate {b['id']}"
                out_console.print(f"{name} seed {r['seed']}: run {r['run_id']}, best {what} ({b['origin']}), "
                                  f"rank score {b['rank_score']:.4f} at fidelity {b['fidelity']}", highlight=False)
    if report.get("seed_baseline") is not None:
        out_console.print(f"best built-in seed (proxy): {report['seed_baseline']:.4f}; 'best held-out' is the best "
                          "held-out score among a strategy's own candidates (the funnel scores those that beat "
                          "the incumbent); 'own best': repeats whose best, in the cascade's order, is a proposed "
                          "rule rather than a built-in seed", highlight=False)
    if report.get("figure"):
        out_console.print(f"figure: {report['figure']}", highlight=False)
    if report.get("wall_s"):
        out_console.print(f"wall time {report['wall_s']:.0f} s", highlight=False)


def print_bench(report: dict) -> None:
    from rich.table import Table

    out = _stdout()
    for task, data in report["tasks"].items():
        table = Table(title=f"symdisc bench {report['id']}: {task} (test accuracy, mean ± std over seeds)")
        for col in ("optimizer", "lr", "final acc", "best acc", "state", "class", "steps/s", "seeds"):
            table.add_column(col)
        for name, s in sorted(data["summary"].items(), key=lambda kv: -kv[1]["final_mean"]):
            state = f"{s['state_bytes'] / 1024:.1f} KiB" if s["state_bytes"] >= 1024 else f"{s['state_bytes']} B"
            if s.get("state_bytes_per_tensor") is not None and s["state_bytes"] < 1024:
                state += f" ({s['state_bytes_per_tensor']:g} B/tensor)"
            diverged = f" ({s['diverged']} diverged)" if s["diverged"] else ""
            table.add_row(name, f"{s['lr']:.3g}", f"{s['final_mean']:.4f} ± {s['final_std']:.4f}",
                          f"{s['best_mean']:.4f} ± {s['best_std']:.4f}", state, s["memory_class"],
                          f"{s['steps_per_s']:.1f}", f"{s['seeds']}{diverged}")
        for name, f in data.get("failed", {}).items():
            table.add_row(name, "-", f"stopped: {f['reason']}", "-", "-", "-", "-", f"seed {f['seed']}")
        out.print(table)
        for name, f in data.get("failed", {}).items():
            out.print(f"  {name}: {f['reason']} ({f['message']}) in seed {f['seed']}; the sandbox stopped it, "
                      "the other optimizers' results and files are kept", highlight=False)
        for line in data["verdicts"]:
            out.print(f"  {line}", highlight=False)
    if "overall_fitness" in report:
        table = Table(title="evo-optimizer protocol: task fitness = acc + 0.05 * max(0, 1 - final loss)")
        tasks = list(report["tasks"])
        for col in ["optimizer", "overall", *tasks]:
            table.add_column(col)
        for name, fit in sorted(report["overall_fitness"].items(), key=lambda kv: kv[1]):
            cells = [f"{report['tasks'][t]['summary'][name]['evo_fitness']:.4f}" for t in tasks]
            table.add_row(name, f"{fit:.4f}", *cells)
        out.print(table)
    for name, where in report.get("execution", {}).items():
        out.print(f"{name} ran {where}", highlight=False)
    if report.get("sandbox"):
        lim = report["sandbox"]
        out.print("sandbox limits: " + ", ".join(f"{k} {v}" for k, v in lim.items()), highlight=False)
    for task, files in report["files"].items():
        out.print(f"files ({task}): {', '.join(files.values())}", highlight=False)
    out.print(f"wall time {report.get('wall_s', 0):.0f} s", highlight=False)
