"""The genome strategies: a genetic algorithm (evo-optimizer's) and uniform random sampling."""

from __future__ import annotations

import json
import random
from typing import Optional

from symdisc.search.genome import Genome, crossover, mutate, random_genome, to_source
from symdisc.search.proposers import Abilities, Proposal
from symdisc.store import rank_value


def _genome_rows(evolution) -> list[dict]:
    """Evaluated programs that carry a genome, best first (the GA's population)."""
    rows = [p for p in evolution.db.ranked() if p.get("genome_json")]
    return rows


class RandomProposer:
    name = "random"
    info = {"backend": "random", "model": None}
    abilities = Abilities()

    def start(self, evolution) -> None:
        pass

    def propose(self, evolution, seq: int) -> Proposal:
        rng = random.Random(evolution.config.seed * 1_000_003 + seq)
        genome = random_genome(rng, evolution.config.memory)
        return Proposal(text=to_source(genome), origin=self.name, genome={"genome": genome.as_dict()})

    def observe(self, genome, row: dict) -> None:
        pass

    def close(self) -> None:
        pass


class GeneticProposer:
    """Steady-state GA: until the population is full, random genomes; then each child comes from two
    tournament-selected parents (crossover of the term lists, scalars and flags mixed), mutated with a
    rate that anneals from ``rate_start`` to ``rate_end`` over the budget. The best programs stay in
    the population by construction (it is the top-``population`` programs of the run): elitism
    without a parameter."""

    name = "genome"
    info = {"backend": "genome", "model": None}
    abilities = Abilities()

    def __init__(self, population: int = 16, tournament: int = 3, rate_start: float = 0.5, rate_end: float = 0.1):
        self.population = population
        self.tournament = tournament
        self.rate_start = rate_start
        self.rate_end = rate_end

    def start(self, evolution) -> None:
        pass

    def rate(self, evolution) -> float:
        budget = evolution.config.candidates or 100
        progress = min(1.0, evolution.llm_candidates() / max(1, budget))
        return self.rate_start + (self.rate_end - self.rate_start) * progress

    def propose(self, evolution, seq: int) -> Proposal:
        rng = random.Random(evolution.config.seed * 1_000_003 + seq)
        memory = evolution.config.memory
        pool = _genome_rows(evolution)[: self.population]
        if len(pool) < self.population // 2:
            genome = random_genome(rng, memory)
            return Proposal(text=to_source(genome), origin=self.name, genome={"genome": genome.as_dict()})
        pick = lambda: max(rng.sample(pool, min(self.tournament, len(pool))), key=rank_value)  # noqa: E731
        mother, father = pick(), pick()
        a = Genome.from_dict(json.loads(mother["genome_json"])["genome"])
        b = Genome.from_dict(json.loads(father["genome_json"])["genome"])
        child = mutate(crossover(a, b, rng), rng, self.rate(evolution), memory)
        return Proposal(text=to_source(child), origin=self.name, parent_id=mother["id"],
                        genome={"genome": child.as_dict(), "parents": [mother["id"], father["id"]]})

    def observe(self, genome: Optional[dict], row: dict) -> None:
        pass  # the population is read from the database, so a resumed run continues exactly

    def close(self) -> None:
        pass
