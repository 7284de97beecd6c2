"""A REINFORCE controller over the mutation engine's choices (the seed's RL-NAS, on programs).

The policy is a softmax over the mutation kinds (``mutations.KINDS``). Each proposal samples a
kind; the child's verdict gives a rank reward: the fraction of the run's evaluated programs it
outranks (0 for a repeat, a rejection or a failure). The logits move by REINFORCE with a moving
baseline, ``theta += lr * (reward - baseline) * (onehot(kind) - pi)``. Parents, populations and
fitting are the mutation engine's (``mutate.py``); the policy is stored with the run.
"""

from __future__ import annotations

import math
import random

from symdisc.search.mutations import KINDS
from symdisc.search.proposers import Proposal
from symdisc.search.proposers.mutate import MutateProposer
from symdisc.store import best_key

LEARNING_RATE = 0.5
BASELINE_DECAY = 0.9


class RLProposer(MutateProposer):
    name = "rl"
    info = {"backend": "rl", "model": None}

    def __init__(self):
        super().__init__()
        self.theta = {k: 0.0 for k in KINDS}
        self.baseline = 0.0
        self.updates = 0

    def start(self, evolution) -> None:
        super().start(evolution)
        saved = evolution.search_state().get("rl") or {}
        self.theta.update({k: float(v) for k, v in (saved.get("theta") or {}).items() if k in self.theta})
        self.baseline = float(saved.get("baseline", 0.0))
        self.updates = int(saved.get("updates", 0))

    def policy(self) -> dict:
        top = max(self.theta.values())
        weights = {k: math.exp(v - top) for k, v in self.theta.items()}
        total = sum(weights.values())
        return {k: w / total for k, w in weights.items()}

    def propose(self, evolution, seq: int, kind=None) -> Proposal:
        rng = random.Random(evolution.config.seed * 1_000_003 + seq + 17)
        pi = self.policy()
        kind = rng.choices(list(pi), weights=list(pi.values()), k=1)[0]
        return super().propose(evolution, seq, kind=kind)

    def observe(self, genome, row: dict) -> None:
        super().observe(genome, row)
        kind = row.get("operator")
        if row.get("origin") != "mutate" or kind not in self.theta or self.evolution is None:
            return
        reward = 0.0
        if row.get("status") == "evaluated":
            others = [p for p in self.evolution.db.programs.values() if p["id"] != row["id"]]
            reward = sum(best_key(row) < best_key(p) for p in others) / max(1, len(others))
        advantage = reward - self.baseline
        pi = self.policy()
        for k in self.theta:
            self.theta[k] += LEARNING_RATE * advantage * ((1.0 if k == kind else 0.0) - pi[k])
        self.baseline = BASELINE_DECAY * self.baseline + (1 - BASELINE_DECAY) * reward
        self.updates += 1
        self.evolution.save_search_state("rl", {"theta": {k: round(v, 6) for k, v in self.theta.items()},
                                                "baseline": round(self.baseline, 6), "updates": self.updates})
