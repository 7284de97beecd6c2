"""The mutation engine as a proposer: typed AST edits of the run's own programs, no model.

Each proposal draws an operator (``mutations.KINDS``, uniformly, or as the caller's bandit says),
a parent by tournament on one island (``population.py``: islands visited in turn), and for
crossover a second parent from the next island; ``Mutator.child`` then edits until the child
passes the gate and is new to the run (its live program's hash is neither the parent's nor any
hash the run has seen). The parents are the run database's evaluated programs, whoever wrote them,
so model replies and fitted programs join the same populations.
"""

from __future__ import annotations

import random
import time
from typing import Optional

from symdisc.search.mutations import KINDS, Mutator
from symdisc.search.population import Population
from symdisc.search.proposers import Abilities, Proposal

ATTEMPTS = 6  # (operator, parent) draws before a proposal gives up on novelty


class MutateProposer:
    name = "mutate"
    info = {"backend": "mutate", "model": None}
    abilities = Abilities()

    def __init__(self, kinds=KINDS):
        self.kinds = tuple(kinds)
        self.population: Optional[Population] = None
        self.evolution = None

    def start(self, evolution) -> None:
        self.evolution = evolution
        c = evolution.config
        m = c.mutation
        self.population = Population(c.islands, m.size, m.tournament, m.parsimony, m.migrate_every)
        self.population.load(evolution.search_state().get("mutate"))
        for pid, row in sorted(evolution.db.programs.items()):
            if pid not in self.population:
                self.population.add(pid, _island(row))

    def state(self) -> dict:
        return self.population.to_dict() if self.population else {}

    def propose(self, evolution, seq: int, kind: Optional[str] = None) -> Proposal:
        if self.population is None:
            self.start(evolution)
        t0 = time.perf_counter()
        rng = random.Random(evolution.config.seed * 1_000_003 + seq)
        mutator = Mutator(evolution.config.memory, rng, evolution.config.max_buffers)
        programs = evolution.db.programs
        known = lambda h: evolution.db.known_hash(h) is not None  # noqa: E731
        islands = len(self.population.islands)
        island = self.population.proposals % islands
        parent = other = None
        child = None
        for attempt in range(ATTEMPTS):
            op = kind if kind is not None and attempt < ATTEMPTS // 2 else rng.choice(self.kinds)
            parent = self.population.draw(programs, rng, island)
            if parent is None:
                break
            other = self.population.draw(programs, rng, island + 1, exclude={parent["id"]}) \
                if op == "crossover" else None
            if op == "crossover" and other is None:
                continue
            child = mutator.child(parent["normalized"] or parent["code"], op, known,
                                  other=(other["normalized"] or other["code"]) if other else None)
            if child is not None:
                break
        self.population.note_proposal(programs)
        self._save()
        if child is None:  # nothing new nearby: send the parent back, judged a repeat (and counted)
            text = (parent or {}).get("normalized") or "def update(grad, param, state, lr, t):\n    return lr * grad\n"
            return Proposal(text=text, origin="mutate", parent_id=parent["id"] if parent else None,
                            gen_ms=(time.perf_counter() - t0) * 1e3,
                            meta={"operator": op if parent else "constant", "island": island})
        return Proposal(text=child.code, origin="mutate", parent_id=parent["id"],
                        gen_ms=(time.perf_counter() - t0) * 1e3,
                        meta={"operator": child.kind, "island": island,
                              "other_id": other["id"] if other is not None else None})

    def observe(self, genome, row: dict) -> None:
        if self.population is None or row.get("status") != "evaluated" or row.get("fitness") is None:
            return
        self.population.add(row["id"], _island(row))
        self._save()

    def _save(self) -> None:
        if self.evolution is not None:
            self.evolution.save_search_state("mutate", self.state())

    def close(self) -> None:
        pass


def _island(row: dict) -> Optional[int]:
    """Where a program lives: its own island; a seed or a fit without one on every island; any other
    program (a model reply of another strategy) on an island chosen by its id."""
    if row.get("island") is not None:
        return row["island"]
    return None if row.get("origin") in ("seed", "fit") else row["id"]
