"""What keeps the llm proposer's prompts new: islands, parent weights, a bandit over choices.

* Parent weights (after ShinkaEvolve): ``sigmoid(sharpness * (f - median) / MAD) / (1 + children)``
  over one island's programs, so good programs are favoured and a parent that has already been
  drawn many times gives way to others. ``children`` counts draws, not only successful children.
* Islands evolve apart: a child lives on the island its parent was drawn from; every
  ``migrate_every`` proposals the best program of each island joins the next island (a ring).
  The built-in seeds start on every island.
* A UCB1 bandit per choice (operator, model, temperature) rewarded by what a child brings:
  1 for a new program that completes every stage it is sent to, 1 more if it beats its parent.

All of it is a plain dict (``to_dict``/``from_dict``) stored with the run (``runs.search_json``),
so ``--resume`` continues with the same counts.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import Optional, Sequence

REWARD_MAX = 2.0


class Bandit:
    """UCB1 over named arms; arms never tried are tried first (in random order)."""

    def __init__(self, arms: Sequence, exploration: float = 1.0):
        self.arms = [str(a) for a in arms]
        self.exploration = exploration
        self.n = {a: 0 for a in self.arms}
        self.reward = {a: 0.0 for a in self.arms}

    def choose(self, rng: random.Random, allowed: Optional[Sequence] = None) -> str:
        arms = [a for a in self.arms if allowed is None or a in {str(x) for x in allowed}] or list(self.arms)
        untried = [a for a in arms if self.n[a] == 0]
        if untried:
            return rng.choice(untried)
        total = sum(self.n[a] for a in arms)

        def ucb(a):
            mean = self.reward[a] / self.n[a] / REWARD_MAX
            return mean + self.exploration * math.sqrt(2.0 * math.log(total) / self.n[a])

        best = max(ucb(a) for a in arms)
        return rng.choice([a for a in arms if ucb(a) >= best - 1e-12])

    def update(self, arm, reward: float) -> None:
        arm = str(arm)
        if arm not in self.n:  # an arm of an earlier configuration: keep counting it
            self.arms.append(arm)
            self.n[arm], self.reward[arm] = 0, 0.0
        self.n[arm] += 1
        self.reward[arm] += reward

    def to_dict(self) -> dict:
        return {a: {"n": self.n[a], "reward": round(self.reward[a], 6)} for a in self.arms}

    def load(self, data: dict) -> None:
        for arm, d in (data or {}).items():
            if arm not in self.n:
                self.arms.append(arm)
            self.n[arm] = int(d.get("n", 0))
            self.reward[arm] = float(d.get("reward", 0.0))


def parent_weights(fitnesses: Sequence[float], children: Sequence[int], sharpness: float = 10.0) -> list[float]:
    """ShinkaEvolve's weighted sampling: sigmoid of the robust distance from the median, times
    1 / (1 + children drawn)."""
    if not fitnesses:
        return []
    median = statistics.median(fitnesses)
    mad = statistics.median(abs(f - median) for f in fitnesses)
    scale = max(mad, 1e-6)
    out = []
    for f, n in zip(fitnesses, children):
        x = max(-60.0, min(60.0, sharpness * (f - median) / scale))
        out.append(1.0 / (1.0 + math.exp(-x)) / (1.0 + n))
    return out


class Islands:
    """Island membership, children drawn per parent and each parent's recent outcomes."""

    def __init__(self, count: int, migrate_every: int):
        self.count = max(1, count)
        self.migrate_every = max(1, migrate_every)
        self.members: dict[int, set] = {}  # candidate id -> islands it lives on
        self.children: dict[int, int] = {}  # candidate id -> proposals drawn with it as parent
        self.recent: dict[int, list] = {}  # parent id -> last outcomes of its children ("repeat", "new", ...)
        self.proposals = 0  # proposals drawn so far (migration clock)
        self.migrations: list = []  # [proposal, program id, from island, to island]

    def add(self, program_id: int, island: Optional[int]) -> None:
        """A seed (island None) lives everywhere; a child on its parent's island."""
        islands = set(range(self.count)) if island is None else {int(island) % self.count}
        self.members.setdefault(program_id, set()).update(islands)

    def on_island(self, programs: dict, island: int) -> list[dict]:
        return [p for pid, p in programs.items() if island in self.members.get(pid, set(range(self.count)))]

    def weight(self, programs: list[dict], program_id: int, sharpness: float = 10.0) -> float:
        ids = [p["id"] for p in programs]
        ws = parent_weights([p["fitness"] for p in programs], [self.children.get(i, 0) for i in ids], sharpness)
        return ws[ids.index(program_id)]

    def draw_parent(self, programs: list[dict], rng: random.Random, exclude=(), sharpness: float = 10.0):
        pool = [p for p in programs if p["id"] not in set(exclude)] or list(programs)
        if not pool:
            return None
        ws = parent_weights([p["fitness"] for p in pool], [self.children.get(p["id"], 0) for p in pool], sharpness)
        return rng.choices(pool, weights=ws, k=1)[0] if sum(ws) > 0 else rng.choice(pool)

    def note_draw(self, parent_id: Optional[int]) -> None:
        self.proposals += 1
        if parent_id is not None:
            self.children[parent_id] = self.children.get(parent_id, 0) + 1

    def note_outcome(self, parent_id: Optional[int], outcome: str) -> None:
        if parent_id is None:
            return
        self.recent.setdefault(parent_id, []).append(outcome)
        del self.recent[parent_id][:-4]

    def recent_repeats(self, parent_id: Optional[int]) -> int:
        """How many of the parent's last children in a row were repeats."""
        k = 0
        for outcome in reversed(self.recent.get(parent_id, [])):
            if outcome != "repeat":
                break
            k += 1
        return k

    def migrate_due(self) -> bool:
        return self.count > 1 and self.proposals > 0 and self.proposals % self.migrate_every == 0

    def migrate(self, programs: dict, key) -> list:
        """Each island's best (by ``key``, smaller is better) joins the next island of the ring."""
        moved = []
        for island in range(self.count):
            here = self.on_island(programs, island)
            if not here:
                continue
            best = min(here, key=key)
            to = (island + 1) % self.count
            if to not in self.members.setdefault(best["id"], set()):
                self.members[best["id"]].add(to)
                moved.append([self.proposals, best["id"], island, to])
        self.migrations.extend(moved)
        return moved

    def to_dict(self) -> dict:
        return {"count": self.count, "proposals": self.proposals,
                "members": {str(k): sorted(v) for k, v in self.members.items()},
                "children": {str(k): v for k, v in self.children.items()},
                "recent": {str(k): v for k, v in self.recent.items()},
                "migrations": self.migrations[-50:]}

    def load(self, data: dict) -> None:
        data = data or {}
        self.proposals = int(data.get("proposals", 0))
        self.members = {int(k): set(v) for k, v in data.get("members", {}).items()}
        self.children = {int(k): int(v) for k, v in data.get("children", {}).items()}
        self.recent = {int(k): list(v) for k, v in data.get("recent", {}).items()}
        self.migrations = list(data.get("migrations", []))


class RateBandit:
    """UCB over arms rewarded per wall-clock second: the arm whose reward per second of its own time
    is highest, plus an exploration bonus in the same units (the overall rate times UCB1's term).
    Arms never tried are tried first. What an arm costs is the time from its proposal to its verdict."""

    def __init__(self, arms: Sequence, exploration: float = 1.0):
        self.arms = [str(a) for a in arms]
        self.exploration = exploration
        self.n = {a: 0 for a in self.arms}
        self.reward = {a: 0.0 for a in self.arms}
        self.seconds = {a: 0.0 for a in self.arms}

    def rate(self, arm: str) -> float:
        return self.reward[arm] / max(self.seconds[arm], 1e-3)

    def choose(self, rng: random.Random, allowed: Optional[Sequence] = None) -> str:
        arms = [a for a in self.arms if allowed is None or a in {str(x) for x in allowed}] or list(self.arms)
        untried = [a for a in arms if self.n[a] == 0]
        if untried:
            return rng.choice(untried)
        total = sum(self.n[a] for a in arms)
        overall = sum(self.reward[a] for a in arms) / max(sum(self.seconds[a] for a in arms), 1e-3)
        scale = max(overall, 1e-3)

        def ucb(a):
            return self.rate(a) + self.exploration * scale * math.sqrt(2.0 * math.log(total) / self.n[a])

        best = max(ucb(a) for a in arms)
        return rng.choice([a for a in arms if ucb(a) >= best - 1e-12])

    def update(self, arm, reward: float, seconds: float) -> None:
        arm = str(arm)
        if arm not in self.n:
            self.arms.append(arm)
            self.n[arm], self.reward[arm], self.seconds[arm] = 0, 0.0, 0.0
        self.n[arm] += 1
        self.reward[arm] += reward
        self.seconds[arm] += max(0.0, seconds)

    def to_dict(self) -> dict:
        return {a: {"n": self.n[a], "reward": round(self.reward[a], 6), "seconds": round(self.seconds[a], 3)}
                for a in self.arms}

    def load(self, data: Optional[dict]) -> None:
        for arm, d in (data or {}).items():
            if arm not in self.n:
                self.arms.append(arm)
            self.n[arm] = int(d.get("n", 0))
            self.reward[arm] = float(d.get("reward", 0.0))
            self.seconds[arm] = float(d.get("seconds", 0.0))
