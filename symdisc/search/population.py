"""The mutation engine's populations: islands of evaluated programs, aging, parsimony, migration.

Each island is a queue of program ids, oldest first, at most ``size`` long: a program joins the
island its parent came from, and the oldest member retires when the queue is full (aging
evolution), so an old champion that no child improves on gives way instead of being redrawn
forever. Parents are the winners of small tournaments on one island, scored by the run's ranking
(``store.rank_value``) less a parsimony term per AST node. Every ``migrate_every`` proposals each
island's best joins the next island of a ring, young again there. The built-in seeds start on every
island. Members are ids of the run database's evaluated programs; the whole state is a plain dict
stored with the run, so ``--resume`` continues it.
"""

from __future__ import annotations

import ast
import random
from typing import Optional

from symdisc.store import rank_value


def program_size(row: dict) -> int:
    """AST nodes of a program's text (what parsimony counts)."""
    try:
        return sum(1 for _ in ast.walk(ast.parse(row.get("normalized") or row.get("code") or "")))
    except SyntaxError:
        return 0


class Population:
    def __init__(self, islands: int = 3, size: int = 24, tournament: int = 4, parsimony: float = 0.01,
                 migrate_every: int = 48):
        self.islands: list[list[int]] = [[] for _ in range(max(1, islands))]
        self.size = max(2, size)
        self.tournament = max(1, tournament)
        self.parsimony = parsimony
        self.migrate_every = max(1, migrate_every)
        self.proposals = 0
        self.retired = 0
        self.migrations: list = []
        self._sizes: dict[int, int] = {}

    def __contains__(self, program_id: int) -> bool:
        return any(program_id in members for members in self.islands)

    def add(self, program_id: int, island: Optional[int] = None) -> None:
        """A seed (island None) joins every island; a child its parent's island."""
        targets = range(len(self.islands)) if island is None else [int(island) % len(self.islands)]
        for i in targets:
            members = self.islands[i]
            if program_id in members:
                members.remove(program_id)
            members.append(program_id)
            while len(members) > self.size:
                members.pop(0)
                self.retired += 1

    def score(self, row: dict) -> float:
        pid = row["id"]
        if pid not in self._sizes:
            self._sizes[pid] = program_size(row)
        return rank_value(row) - self.parsimony * self._sizes[pid]

    def draw(self, programs: dict, rng: random.Random, island: int, exclude=()) -> Optional[dict]:
        """A tournament's winner among the island's members that are in ``programs``."""
        pool = [programs[i] for i in self.islands[island % len(self.islands)] if i in programs and i not in exclude]
        if not pool:
            pool = [p for p in programs.values() if p["id"] not in exclude]
        if not pool:
            return None
        entrants = rng.sample(pool, min(self.tournament, len(pool)))
        return max(entrants, key=self.score)

    def note_proposal(self, programs: dict) -> list:
        """Count one proposal; migrate when it is due. Returns the migrations made."""
        self.proposals += 1
        if len(self.islands) < 2 or self.proposals % self.migrate_every:
            return []
        moved = []
        for i, members in enumerate(self.islands):
            here = [programs[p] for p in members if p in programs]
            if not here:
                continue
            best = max(here, key=self.score)
            to = (i + 1) % len(self.islands)
            self.add(best["id"], to)
            moved.append([self.proposals, best["id"], i, to])
        self.migrations = (self.migrations + moved)[-50:]
        return moved

    def to_dict(self) -> dict:
        return {"islands": [list(m) for m in self.islands], "proposals": self.proposals, "retired": self.retired,
                "migrations": self.migrations}

    def load(self, data: Optional[dict]) -> None:
        if not data:
            return
        saved = [list(m) for m in data.get("islands", [])]
        for i in range(min(len(saved), len(self.islands))):
            self.islands[i] = [int(p) for p in saved[i]][-self.size:]
        self.proposals = int(data.get("proposals", 0))
        self.retired = int(data.get("retired", 0))
        self.migrations = list(data.get("migrations", []))
