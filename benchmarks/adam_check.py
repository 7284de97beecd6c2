"""Adam on the built-ins' full-size protocol at rates chosen by full-length validation, paired with
the built-ins' table.

    python benchmarks/adam_check.py

The built-ins' table (benchmarks/builtins.py) tunes every optimizer with 1-epoch trials, which chose
0.01 for Adam. benchmarks/results/builtins/adam-full-length-check/ holds Adam's 10-epoch runs at
fixed rates on the same 3 seeds (same initial weights, data order and noisy labels); this picks the
rate with the best mean final *validation* score (never the test set) and compares every optimizer
of the table with that Adam, seed by seed, Holm-corrected over the table. Reads the bench run
databases under runs/builtins/; trains nothing.
"""

from __future__ import annotations

import sqlite3
import statistics
from pathlib import Path

from symdisc.bench import stats

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "runs" / "builtins" / "fmnist-noisy-full-e10-s3-warmup-cosine-gridx1"
CHECK = ROOT / "runs" / "builtins" / "adam-check" / "symdisc.db"


def finals(db: Path) -> dict:
    """{lr: {seed: (val_acc, final_acc)}} of a bench database's final runs."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT lr, seed, val_acc, final_acc FROM bench_results WHERE phase = 'final'").fetchall()
    out: dict = {}
    for lr, seed, val, acc in rows:
        out.setdefault(lr, {})[seed] = (val, acc)
    return out


def main() -> int:
    adam = finals(CHECK)
    adam.update(finals(TABLE / "adam" / "symdisc.db"))
    print("adam: rate -> mean final validation / test accuracy over the seeds")
    for lr, per in sorted(adam.items()):
        print(f"  {lr:.3g}: {statistics.mean(v for v, _ in per.values()):.4f} / "
              f"{statistics.mean(a for _, a in per.values()):.4f} ({len(per)} seeds)")
    best = max(adam, key=lambda lr: statistics.mean(v for v, _ in adam[lr].values()))
    reference = {seed: acc for seed, (_, acc) in adam[best].items()}
    print(f"chosen by validation: {best:.3g}\n")
    rows = []
    for folder in sorted(p for p in TABLE.iterdir() if (p / "symdisc.db").exists() and p.name != "adam"):
        per = next(iter(finals(folder / "symdisc.db").values()), {})
        seeds = sorted(set(per) & set(reference))
        if len(seeds) < 2:
            continue
        rows.append((folder.name, stats.paired([per[s][1] for s in seeds], [reference[s] for s in seeds]),
                     statistics.mean(per[s][1] for s in seeds)))
    adjusted = stats.holm([r[1]["p_t"] for r in rows])
    print(f"| optimizer | final test acc | − adam at {best:.3g} (95% CI) | p | Holm p |")
    print("|---|---|---|---|---|")
    for (name, pair, mean), p_holm in sorted(zip(rows, adjusted), key=lambda x: -x[0][2]):
        print(f"| {name} | {mean:.4f} | {pair['mean_diff']:+.4f} [{pair['ci_low']:+.4f}, {pair['ci_high']:+.4f}] | "
              f"{pair['p_t']:.3g} | {p_holm:.3g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
