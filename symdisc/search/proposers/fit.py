"""Constant fitting as a source of programs: the run's promising programs, their constants fitted.

Due for a fit: every built-in seed when a run starts (``MutationConfig.fit_seeds``: "beats the
seeds" then means beats the fitted seeds), then any evaluated program in the top ``fit_top``
fraction of the run's proxy scores, whoever proposed it, once. The fit (``fitting.py``) scores each
trial in the run's own gate and sandbox on the proxy's fixed seeds; a fit that improves on its
program is proposed as a new candidate (origin ``fit``, parent the program, the values and cost in
``fit_json``) and judged like any other, so the stored score is the fitted code's own.
"""

from __future__ import annotations

import json
import math
from typing import Optional

from symdisc.search.fitting import fit_constants
from symdisc.search.proposers import Abilities, Proposal


class FitSource:
    name = "fit"
    info = {"backend": "fit", "model": None}
    abilities = Abilities()

    def __init__(self):
        self.done: set = set()
        self.evolution = None

    def start(self, evolution) -> None:
        self.evolution = evolution
        self.done = set((evolution.search_state().get("fit") or {}).get("done", []))

    def due(self, evolution, seeds_only: bool = False) -> Optional[dict]:
        """The next program to fit, or None."""
        m = evolution.config.mutation
        programs = [p for p in evolution.db.programs.values() if p["id"] not in self.done and p.get("origin") != "fit"]
        if m.fit_seeds:
            seeds = [p for p in programs if p.get("origin") == "seed"]
            if seeds:
                return min(seeds, key=lambda p: p["seq"])
        if seeds_only or m.fit_top <= 0:
            return None
        scores = sorted((p["fitness"] for p in evolution.db.programs.values()), reverse=True)
        if not scores:
            return None
        threshold = scores[max(0, math.ceil(m.fit_top * len(scores)) - 1)]
        top = [p for p in programs if p["fitness"] >= threshold]
        return max(top, key=lambda p: (p["fitness"], -p["seq"]), default=None)

    def propose(self, evolution, seq: int, row: Optional[dict] = None) -> Optional[Proposal]:
        """Fit ``row`` (default: the program due); a Proposal when the fit improved on it, else None."""
        row = row or self.due(evolution)
        if row is None:
            return None
        self.done.add(row["id"])
        evolution.save_search_state("fit", {"done": sorted(self.done)})
        m = evolution.config.mutation
        code = row.get("normalized") or row.get("code")
        result = fit_constants(code, evolution.proxy_score, baseline=row["fitness"], trials=m.fit_trials,
                               dims=m.fit_dims, seed=evolution.config.seed * 1_000_003 + seq)
        evolution.on_event("fitted", {"id": row["id"], "result": {k: v for k, v in result.items() if k != "code"}})
        if not result["improved"]:
            return None
        record = {k: result[k] for k in ("baseline", "fitness", "values", "original", "lr_scale", "trials", "sampler",
                                         "ms")}
        return Proposal(text=result["code"], origin="fit", parent_id=row["id"], gen_ms=result["ms"],
                        meta={"operator": "fit", "island": row.get("island"), "fit_json": json.dumps(record)})

    def observe(self, genome, row: dict) -> None:
        pass

    def close(self) -> None:
        pass
