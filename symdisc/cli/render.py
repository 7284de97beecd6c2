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


def _bytes(n) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _pv(value) -> str:
    if value is None:
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def print_bench(report: dict) -> None:
    from rich.table import Table

    out = _stdout()
    proto = report.get("protocol", {})
    for task, data in report["tasks"].items():
        target = data.get("target") or {}
        seeds = max((s["seeds"] for s in data["summary"].values()), default=0)
        tuned_how = {"grid": f"log grid {proto.get('lr_grid')} (widened past an edge best)",
                     "tpe": f"TPE, {proto.get('tpe_trials')} trials", "none": "documented defaults"}.get(
            proto.get("tuner"), "?")
        table = Table(title=f"symdisc bench {report['id']}: {task} (test accuracy, mean ± std over {seeds} seeds; "
                            f"lr tuned by {tuned_how} on a validation split; early-stopped = at the best validation "
                            f"score; target = {target.get('reference', '?')}'s final validation score on the same "
                            f"seed, mean {(target.get('target_val') or 0):.4f})")
        for col in ("optimizer", "lr", "wd", "final acc", "early-stopped acc", "steps to target", "s to target",
                    "state B/param", "class", "ms/step", "seeds"):
            table.add_column(col)
        for name, s in sorted(data["summary"].items(), key=lambda kv: -(kv[1]["final_mean"] or 0)):
            per_param = s.get("state_bytes_per_param")
            state = f"{per_param:.3g} ({_bytes(s['state_bytes'])})" if per_param is not None else _bytes(s["state_bytes"])
            diverged = f" ({s['diverged']} diverged)" if s["diverged"] else ""
            t = (target.get("optimizers") or {}).get(name, {})
            reached = f" ({t['reached']}/{t['seeds']})" if t and t.get("reached") != t.get("seeds") else ""
            steps_t = f"not reached ({t['reached']}/{t['seeds']})" if t and t.get("median_steps") is None else (
                f"{t['median_steps']:.0f}{reached}" if t else "-")
            secs_t = "-" if not t or t.get("median_seconds") is None else f"{t['median_seconds']:.1f}"
            early = "-" if s.get("early_mean") is None else f"{s['early_mean']:.4f} ± {s['early_std']:.4f}"
            edge = " (edge!)" if (s.get("tuning") or {}).get("on_edge") else ""
            table.add_row(name, f"{s['lr']:.3g}{edge}", f"{s.get('weight_decay') or 0:g}",
                          f"{s['final_mean']:.4f} ± {s['final_std']:.4f}", early, steps_t, secs_t, state,
                          s["memory_class"], "-" if not s.get("ms_per_step") else f"{s['ms_per_step']:.1f}",
                          f"{s['seeds']}{diverged}")
        for name, f in data.get("failed", {}).items():
            table.add_row(name, "-", "-", f"stopped: {f['reason']}", "-", "-", "-", "-", "-", "-", f"seed {f['seed']}")
        out.print(table)
        pairs = (data.get("pairs") or {}).get("final", [])
        if pairs:
            ptable = Table(title=f"{task}: paired differences of final test accuracy (a - b over the seeds both "
                                 f"finished: same initial weights, data order and noisy labels); 95% t-interval; "
                                 f"p-values of the paired t-test, Holm-corrected over the {len(pairs)} pairs, and of "
                                 f"the Wilcoxon signed-rank test (from 5 seeds)")
            for col in ("a", "b", "mean diff", "95% CI", "p (t)", "p (Holm)", "p (Wilcoxon)", "seeds"):
                ptable.add_column(col)
            for p in pairs:
                ci = "-" if p["ci_low"] is None else f"[{p['ci_low']:+.4f}, {p['ci_high']:+.4f}]"
                ptable.add_row(p["a"], p["b"], "-" if p["mean_diff"] is None else f"{p['mean_diff']:+.4f}", ci,
                               _pv(p["p_t"]), _pv(p["p_holm"]), _pv(p["p_wilcoxon"]), str(p["n"]))
            out.print(ptable)
        for name, f in data.get("failed", {}).items():
            out.print(f"  {name}: {f['reason']} ({f['message']}) in seed {f['seed']}; the sandbox stopped it, "
                      "the other optimizers' results and files are kept", highlight=False)
        for name, t in (data.get("tuning") or {}).items():
            if t.get("method") in ("grid", "tpe"):
                tried = len(t.get("scores", []))
                out.print(f"  {name}: tuned by {t['method']} over {tried} trials of {t.get('steps')} steps on "
                          f"{t.get('examples')} examples (validation {t.get('validation')}): lr {t['lr']:.3g}"
                          + (f", wd {t['weight_decay']:g}" if t.get("weight_decay") else "")
                          + ("; " + "; ".join(t["widened"]) if t.get("widened") else ""), highlight=False)
        for line in data["verdicts"]:
            out.print(f"  {line}", highlight=False)
        final_steps = max((s["steps"] for s in data["summary"].values()), default=0)
        out.print(f"  final runs: {final_steps} steps each; tuning trials "
                  + ("SHORTER than the final runs (--tune-steps/--tune-epochs/--tune-subset)"
                     if proto.get("tuning_is_shorter") else "as long as the final runs"), highlight=False)
    if report.get("profile"):
        out.print("performance profile across tasks (time to the reference's final validation score, seconds):",
                  highlight=False)
        for line in report["profile"]["summary"].values():
            out.print(f"  {line}", highlight=False)
        if report["profile"].get("figure"):
            out.print(f"  figure: {report['profile']['figure']}", highlight=False)
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
