"""The program database of a run: evaluated programs, deduplication, selection for the prompt.

Two programs are the same if their normalized ASTs hash alike (renamed locals, comments) or if
they behave alike: the same steps on fixed probe tensors (the fingerprint, computed in the sandbox).
"""

from __future__ import annotations

import random
from typing import Optional

from symdisc.store import FIDELITY, best_key, fidelity_of, rank_score


class ProgramDatabase:
    def __init__(self):
        self.by_hash: dict[str, int] = {}
        self.by_fingerprint: dict[str, int] = {}
        self.programs: dict[int, dict] = {}  # candidate id -> row, evaluated programs only

    def known_hash(self, ast_hash: Optional[str]) -> Optional[int]:
        return self.by_hash.get(ast_hash) if ast_hash else None

    def known_behaviour(self, fingerprint: Optional[str]) -> Optional[int]:
        return self.by_fingerprint.get(fingerprint) if fingerprint else None

    def note_hash(self, ast_hash: Optional[str], candidate_id: int) -> None:
        if ast_hash:
            self.by_hash.setdefault(ast_hash, candidate_id)

    def add(self, row: dict) -> None:
        """Add an evaluated program (a candidates row with a fitness)."""
        self.note_hash(row.get("ast_hash"), row["id"])
        if row.get("fingerprint"):
            self.by_fingerprint.setdefault(row["fingerprint"], row["id"])
        if row.get("fitness") is not None:
            self.programs[row["id"]] = row

    def ranked(self) -> list[dict]:
        """In the store's one order (best_key): the highest cascade fidelity reached, then the score
        there. What the prompt shows and every proposer optimizes."""
        return sorted(self.programs.values(), key=best_key)

    def best_by_proxy(self) -> Optional[dict]:
        return max(self.programs.values(), key=lambda p: (p["fitness"], -p["seq"]), default=None)

    def best_at(self, stage: str) -> Optional[float]:
        """The best score any program reached at a cascade stage (``proxy``, ``heldout``, ``long``)."""
        if stage == "proxy":
            best = self.best_by_proxy()
            return best["fitness"] if best else None
        if stage == "heldout":
            scores = [p["heldout"] for p in self.programs.values() if p.get("heldout") is not None]
        else:
            scores = [rank_score(p) for p in self.programs.values() if fidelity_of(p) >= FIDELITY[stage]]
        return max(scores) if scores else None

    def best(self) -> Optional[dict]:
        """The run's best in the one order the store uses (best_key)."""
        return min(self.programs.values(), key=best_key, default=None)

    def select(self, k: int, rng: random.Random) -> list[dict]:
        """The best program, plus k-1 drawn from the next best 2k: exploitation with some variety."""
        ranked = self.ranked()
        if len(ranked) <= k:
            return ranked
        pool = ranked[1: 2 * k]
        return [ranked[0]] + rng.sample(pool, k - 1)

    def __len__(self) -> int:
        return len(self.programs)
