"""The data of a run's page, built from the run database alone (no torch, no model).

One JSON-able dict: the run (config, model, versions, budget, status, the command that repeats it),
every candidate (scores, verdict, code), best-so-far series per fidelity, where replies went over the
run (and per operator and per model where the candidates table has those columns), what each operator
and each model proposed (replies, new programs, repeats, improvements on the parent, seconds), the lineage tree
from seeds to the leaders, proxy against held-out with the rank correlation, and bench results of
the run's candidates with their figures. The page (html.py) draws it; `symdisc ui` serves it as JSON.
"""

from __future__ import annotations

import base64
import calendar
import json
import time
from pathlib import Path
from typing import Optional

from symdisc.config import LLM_PROPOSERS
from symdisc.store import Store, best_key

# Columns read when present: other parts of symdisc add some of them (operator, model) over time,
# so the report asks the table what it has instead of assuming.
_WANTED = ("id", "seq", "created_at", "origin", "name", "parent_id", "status", "stage", "reason", "message", "line",
           "fitness", "heldout", "best_lr", "state_scalars", "state_bytes", "duplicate_of", "tokens_in", "tokens_out",
           "gen_ms", "gate_ms", "eval_ms", "code", "normalized", "response", "operator", "model")
_OPTIONAL_GROUPS = ("operator", "model")
TREE_LEADERS = 5  # the lineage tree joins the paths from the seeds to this many best candidates
BUCKETS = 20  # where replies went: this many slices of the run
RESPONSE_CHARS = 1500  # a reply without extracted code is shown up to this length


def _epoch(stamp: Optional[str]) -> Optional[float]:
    if not stamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp.rstrip("Z"), "%Y-%m-%dT%H:%M:%S")))
    except ValueError:
        return None


def outcome(row: dict) -> str:
    """Where a reply went: new (evaluated), repeat, rejected: REASON, failed: STAGE, pending."""
    status = row["status"]
    if status == "evaluated":
        return "new"
    if status == "duplicate":
        return "repeat"
    if status == "rejected":
        return f"rejected: {row.get('reason') or '?'}"
    if status == "failed":
        return f"failed: {row.get('stage') or '?'}"
    return status


def selected_on(cfg: dict) -> str:
    """What a search run selected on: its task files (name and path), or the built-in stages."""
    tasks = cfg.get("tasks") or []
    if tasks:
        return ", ".join(f"{t['name']} ({t['path']})" for t in tasks)
    if cfg.get("funnel") is False:
        return "the proxy only (--no-funnel)"
    return "the proxy and the built-in real-data stages"


def repeat_command(run: dict) -> str:
    """The `symdisc evolve` command line that repeats a run's search (same model, budget, seed)."""
    cfg = run.get("config") or {}
    if run.get("kind") == "bench":
        parts = ["symdisc bench", *map(str, cfg.get("candidates") or [])]
        if cfg.get("against"):
            parts.append(f"--against {','.join(cfg['against'])}")
        for task in cfg.get("tasks") or []:  # task files; else the bench's own task ("task")
            parts.append(f"--task {task}")
        keys = ("noise", "seeds", "epochs", "steps", "tune", "tuner", "lr_grid", "tune_steps", "tune_epochs",
                "tune_subset", "val_fraction", "reference", "batch", "subset", "suite")
        for key in keys if cfg.get("tasks") else ("task", *keys):
            if cfg.get(key) is not None:
                parts.append(f"--{key.replace('_', '-')} {cfg[key]:g}" if isinstance(cfg[key], float)
                             else f"--{key.replace('_', '-')} {cfg[key]}")
        if cfg.get("tuner") == "tpe" and cfg.get("tpe_trials"):
            parts.append(f"--tune {cfg['tpe_trials']}")
        if cfg.get("weight_decays") and cfg["weight_decays"] != [0.0]:
            parts.append(f"--weight-decay {','.join(f'{w:g}' for w in cfg['weight_decays'])}")
        for name, value in (cfg.get("lr") or {}).items():
            parts.append(f"--lr {name}={value:g}")
        return " ".join(parts)
    if run.get("kind") != "evolve":
        return f"symdisc runs show {run['id']}"
    parts = ["symdisc evolve"]
    model = cfg.get("model")
    proposer = cfg.get("proposer") or "llm"  # a run stored before the proposer was in its config
    if cfg.get("backend") == "fake":
        parts.append("--fake-replies REPLIES.json")
    elif cfg.get("replay_run"):
        parts.append(f"--replay {cfg['replay_run']}")
    elif proposer in LLM_PROPOSERS:  # the others store the default model name but use none
        if model:
            parts.append(f"--model {model}")
        for base in cfg.get("api_bases") or []:
            parts.append(f"--api-base {base}")
        if cfg.get("api_model"):
            parts.append(f"--api-model {cfg['api_model']}")
    parts.append(f"--proposer {proposer}")
    for key, flag in (("memory", "--memory"), ("candidates", "--candidates"),
                      ("minutes", "--minutes"), ("seed", "--seed")):
        if cfg.get(key) is not None:
            parts.append(f"{flag} {cfg[key]:g}" if isinstance(cfg[key], float) else f"{flag} {cfg[key]}")
    if cfg.get("funnel") is False:
        parts.append("--no-funnel")
    for task in cfg.get("tasks") or []:
        parts.append(f"--task {task['name'] if task.get('builtin') else task['path']}")
    sampling = cfg.get("sampling") or {}
    if sampling.get("temperature") is not None:
        parts.append(f"--temperature {sampling['temperature']:g}")
    if sampling.get("max_tokens") is not None:
        parts.append(f"--max-tokens {sampling['max_tokens']}")
    if sampling.get("grammar") is not None:
        parts.append("--grammar" if sampling["grammar"] else "--no-grammar")
    if cfg.get("cluster") and cfg["cluster"] != "local":
        parts.append(f"--cluster {cfg['cluster']}")
    return " ".join(parts)


def _columns(store: Store) -> list[str]:
    have = {r[1] for r in store.db.execute("PRAGMA table_info(candidates)")}
    return [c for c in _WANTED if c in have]


def _candidates(store: Store, run_id: str, t0: Optional[float]) -> list[dict]:
    cols = _columns(store)
    out = []
    for r in store.db.execute(f"SELECT {', '.join(cols)} FROM candidates WHERE run_id = ? ORDER BY seq", (run_id,)):
        d = dict(r)
        code = d.pop("normalized", None) or d.pop("code", None)
        d.pop("code", None)
        response = d.pop("response", None)
        d["code"] = code
        if not code and response:
            d["reply"] = response[:RESPONSE_CHARS]
        stamp = _epoch(d.pop("created_at", None))
        d["t"] = round(stamp - t0, 1) if stamp is not None and t0 is not None else None
        d["outcome"] = outcome(d) if d["origin"] != "seed" else "seed"
        out.append(d)
    return out


def _best_so_far(rows: list[dict]) -> dict:
    """Per fidelity (proxy, held-out): the best score after each candidate that raised it."""
    series = {"proxy": [], "heldout": []}
    best = {"proxy": None, "heldout": None}
    for r in rows:
        if r["status"] != "evaluated":
            continue
        for fidelity, key in (("proxy", "fitness"), ("heldout", "heldout")):
            value = r.get(key)
            if value is not None and (best[fidelity] is None or value > best[fidelity]):
                best[fidelity] = value
                series[fidelity].append({"seq": r["seq"], "t": r["t"], "value": value, "id": r["id"],
                                         "seed": r["origin"] == "seed"})
    return series


def _outcomes(rows: list[dict], columns: list[str]) -> dict:
    proposed = [r for r in rows if r["origin"] != "seed"]
    kinds: dict[str, int] = {}
    for r in proposed:
        kinds[r["outcome"]] = kinds.get(r["outcome"], 0) + 1
    order = sorted(kinds, key=lambda k: (k != "new", k != "repeat", -kinds[k], k))
    size = max(1, -(-len(proposed) // BUCKETS))
    buckets = []
    for start in range(0, len(proposed), size):
        chunk = proposed[start:start + size]
        counts: dict[str, int] = {}
        for r in chunk:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        buckets.append({"from": chunk[0]["seq"], "to": chunk[-1]["seq"], "counts": counts})
    groups = {}
    for column in _OPTIONAL_GROUPS + ("origin",):
        if column != "origin" and column not in columns:
            continue
        table: dict[str, dict[str, int]] = {}
        for r in proposed:
            name = r.get(column)
            if name is None:
                continue
            table.setdefault(str(name), {})
            table[str(name)][r["outcome"]] = table[str(name)].get(r["outcome"], 0) + 1
        if table and (column != "origin" or len(table) > 1 or not groups):
            groups[column] = table
    return {"total": kinds, "order": order, "buckets": buckets, "groups": groups}


def _tree(rows: list[dict], leaders: list[dict]) -> dict:
    """The paths from the seeds to the leading candidates, joined into one tree (a forest, if several seeds)."""
    by_id = {r["id"]: r for r in rows}
    nodes: dict[int, Optional[int]] = {}
    for leader in leaders:
        node = leader["id"]
        while node is not None and node not in nodes:
            parent = by_id[node].get("parent_id") if node in by_id else None
            if parent is not None and parent not in by_id:
                parent = None  # a parent outside this run: the path starts here
            nodes[node] = parent
            node = parent
    return {"nodes": [{"id": i, "parent": p} for i, p in sorted(nodes.items())],
            "best": leaders[0]["id"] if leaders else None, "leaders": [r["id"] for r in leaders]}


def _bench(store: Store, ids: set[int], own: Optional[str] = None) -> list[dict]:
    """Bench runs that trained any of ``ids`` (and the run ``own`` itself, for a bench run's page)."""
    names = {f"candidate-{i}" for i in ids}
    runs: dict[str, list[dict]] = {own: []} if own else {}
    for r in store.db.execute("SELECT run_id, optimizer FROM bench_results WHERE optimizer LIKE 'candidate-%' "
                              "ORDER BY id"):
        if r["optimizer"] in names:
            runs.setdefault(r["run_id"], [])
    out = []
    for bench_id in runs:
        bench_run = store.get_run(bench_id)
        results = store.bench_results(bench_id)
        table: dict[tuple, dict] = {}
        for r in results:
            if (r.get("phase") or "final") != "final":
                continue  # a tuning trial: scored on the validation split, not a seed of the comparison
            key = (r["task"], r["optimizer"])
            t = table.setdefault(key, {"task": r["task"], "optimizer": r["optimizer"], "lr": r["lr"], "final": [],
                                       "best": [], "diverged": 0, "memory_class": r["memory_class"],
                                       "state_bytes": r["state_bytes"], "ours": r["optimizer"] in names})
            if r["final_acc"] is not None:
                t["final"].append(r["final_acc"])
            if r["best_acc"] is not None:
                t["best"].append(r["best_acc"])
            t["diverged"] += int(r["diverged"] or 0)
        rows = []
        for t in table.values():
            final, best = t.pop("final"), t.pop("best")
            t["seeds"] = max(len(final), 1)
            t["final_mean"] = sum(final) / len(final) if final else None
            t["best_mean"] = sum(best) / len(best) if best else None
            rows.append(t)
        figures = []
        files = ((bench_run.get("summary") or {}).get("files") or {})
        for task, entry in files.items():
            path = entry.get("figure") if isinstance(entry, dict) else None
            if path and Path(path).is_file():
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                figures.append({"task": task, "path": path, "src": "data:image/png;base64," + data})
        out.append({"run_id": bench_id, "status": bench_run["status"], "created_at": bench_run["created_at"],
                    "rows": rows, "figures": figures})
    return out


def proposals(store: Store, run_id: str) -> dict:
    """Per operator and per model: ``Store.proposal_stats`` (the numbers of `runs show`), with the new
    programs per minute of the seconds they cost (None before any second was spent)."""
    out = {}
    for by in ("operator", "model"):
        stats = store.proposal_stats(run_id, by)
        for st in stats.values():
            st["new_per_min"] = round(st["new"] * 60 / st["seconds"], 2) if st["seconds"] > 0 else None
        out[by] = stats
    return out


def run_data(store: Store, run_id: str) -> dict:
    """Everything a run's page shows."""
    from symdisc.search.funnel import funnel_report

    run = store.get_run(run_id)
    t0 = _epoch(run["created_at"])
    columns = _columns(store)
    rows = _candidates(store, run["id"], t0)
    evaluated = [r for r in rows if r["status"] == "evaluated" and r.get("fitness") is not None]
    leaders = sorted(evaluated, key=best_key)[:TREE_LEADERS]
    funnel = funnel_report(evaluated)
    scatter = [{"id": r["id"], "proxy": r["fitness"], "heldout": r["heldout"]} for r in evaluated
               if r.get("heldout") is not None]
    cfg = run.get("config") or {}
    cfg_shown = {k: v for k, v in cfg.items() if k != "prompts"}
    repairs = store.repair_counts(run["id"])
    return {
        "format": 1,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "run": {"id": run["id"], "kind": run["kind"], "status": run["status"], "created_at": run["created_at"],
                "updated_at": run["updated_at"], "model": run.get("model"), "model_sha256": run.get("model_sha256"),
                "backend": run.get("backend"), "versions": run.get("versions") or {}, "config": cfg_shown,
                "prompts": cfg.get("prompts"), "summary": run.get("summary") or {}, "host": run.get("host"),
                "budget": {k: cfg.get(k) for k in ("candidates", "minutes", "evaluations")},
                "selected_on": selected_on(cfg), "command": repeat_command(run)},
        "columns": [c for c in _OPTIONAL_GROUPS if c in columns],
        "candidates": rows,
        "counts": {"candidates": len(rows), "proposed": sum(r["origin"] != "seed" for r in rows),
                   "evaluated": len(evaluated), "repaired": repairs["repaired"], "repair_saved": repairs["saved"]},
        "best": leaders[0]["id"] if leaders else None,
        "best_so_far": _best_so_far(rows),
        "outcomes": _outcomes(rows, columns),
        "proposals": proposals(store, run["id"]),
        "tree": _tree(rows, leaders),
        "funnel": dict(funnel, points=scatter),
        "bench": _bench(store, {r["id"] for r in rows}, own=run["id"] if run["kind"] == "bench" else None),
    }


def data_json(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), default=str)
