"""The language-model proposer.

Three modes (``EvolveConfig.proposer``):

* ``llm``: each request is one named operator (prompts/operators/*.md) applied to a parent drawn
  from one island with ShinkaEvolve's weights (good programs favoured, decaying with the children
  already drawn), with a few other programs of the island as context, drawn anew every time; a
  UCB bandit picks the operator, the model (where ``--model`` was given more than once) and the
  temperature, rewarded by what the child brings (see ``diversity``). The temperature is raised for
  a parent whose last children were repeats. Two consecutive prompts are never the same, and no
  (prompt, temperature, seed) is sent twice.
* ``llm-legacy``: the loop before operators: the best programs and the last three errors, one
  temperature (kept to compare against, ``benchmarks/novelty.py``).
* ``llm-independent``: the seed prompt (the seeds, no errors) sampled independently every time:
  the baseline to beat.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Optional

from symdisc.llm import Generation, Request
from symdisc.search.diversity import REWARD_MAX, Bandit, Islands
from symdisc.search.prompting import (UPDATE_GRAMMAR, grammar_enabled, operator_message, program_text,
                                      user_message)
from symdisc.search.proposers import Abilities, Proposal
from symdisc.store import best_key, rank_value

EDITS = ("mutate", "crossover", "constants", "simplify")  # operators that need a parent with a score


@dataclass
class Draft:
    """A proposal before the model has answered."""

    request: Request
    parent_id: Optional[int] = None
    meta: dict = field(default_factory=dict)  # operator, model, island, temperature, other_id
    model_index: int = 0


class LLMProposer:
    name = "llm"

    def __init__(self, backend, params_b: Optional[float] = None, mode: str = "llm", models=None):
        """``models``: [(name, backend, params_b)] where a run has several; else the one ``backend``."""
        self.models = list(models) if models else [(None, backend, params_b)]
        self.backend = self.models[0][1]
        self.params_b = self.models[0][2]
        self.mode = mode
        self.info = dict(getattr(self.backend, "info", {}) or {})
        self.model_names = [name or (getattr(b, "info", {}) or {}).get("model") or f"model{i}"
                            for i, (name, b, _) in enumerate(self.models)]
        self.system = ""
        self.grammar: Optional[str] = None
        self.grammars: list = []
        self.evolution = None
        self.islands: Optional[Islands] = None
        self.bandits: dict[str, Bandit] = {}
        self.last_user: Optional[str] = None
        self.sent: set = set()
        self.fixed: set = set()  # broken candidates already given to the fix operator
        # batched when every backend decodes several requests together (llm/batched.py's interface)
        batched = all(callable(getattr(b, "submit", None)) for _, b, _ in self.models)
        self.abilities = Abilities(batched=batched, needs_model=True)

    # -- run lifecycle -------------------------------------------------------------------------
    def start(self, evolution) -> None:
        self.evolution = evolution
        config = evolution.config
        if config.proposer in ("llm", "llm-legacy", "llm-independent"):
            self.mode = config.proposer
        self.system = evolution.texts.system_message()
        self.grammars = [UPDATE_GRAMMAR if grammar_enabled(config.sampling.grammar, pb) else None
                         for (_, _, pb) in self.models]
        self.grammar = self.grammars[0]
        operators = [op for op in config.operators if op in evolution.texts.operators]
        if self.mode == "llm" and not operators:
            self.mode = "llm-legacy"  # a run saved before operators existed: its prompts have none
        self.islands = Islands(config.islands, config.migrate_every)
        self.bandits = {"operator": Bandit(operators or ["legacy"]),
                        "model": Bandit(self.model_names),
                        "temperature": Bandit([_t(t) for t in config.sampling.temperatures])}
        saved = evolution.store.get_run(evolution.run_id).get("search") or {}
        self.islands.load(saved.get("islands"))
        for key, bandit in self.bandits.items():
            bandit.load((saved.get("bandits") or {}).get(key))
        self.fixed = set(saved.get("fixed", []))
        self.last_user = saved.get("last_user")
        for pid in evolution.db.programs:
            if pid not in self.islands.members:
                row = evolution.db.programs[pid]
                self.islands.add(pid, row.get("island") if row.get("origin") != "seed" else None)

    def state(self) -> dict:
        return {"mode": self.mode, "islands": self.islands.to_dict() if self.islands else None,
                "bandits": {k: b.to_dict() for k, b in self.bandits.items()},
                "fixed": sorted(self.fixed), "last_user": self.last_user}

    def _save(self) -> None:
        evo = self.evolution
        if evo is not None:  # the run's search state keeps the parts of other sources (hybrid)
            evo.search_state().update(self.state())
            evo.store.update_run(evo.run_id, search_json=evo.search_state())

    # -- proposing -----------------------------------------------------------------------------
    def propose(self, evolution, seq: int) -> Proposal:
        draft = self.prepare(evolution, seq)
        backend = self.models[draft.model_index][1]
        return self.finish(draft, backend.generate(draft.request))

    def prepare(self, evolution, seq: int) -> "Draft":
        """The request for candidate ``seq``, built from the database as it stands now (the cluster
        loop sends it to a proposer actor and calls ``finish`` with the answer)."""
        if self.evolution is None:
            self.start(evolution)
        config = evolution.config
        rng = random.Random(config.seed * 1_000_003 + seq)
        if self.mode == "llm-legacy":
            return self._legacy(evolution, seq, rng)
        if self.mode == "llm-independent":
            return self._independent(evolution, seq)
        for attempt in range(8):
            draft = self._operator_draft(evolution, seq, rng)
            if draft.request.user != self.last_user:
                break
        self._commit(draft)
        return draft

    def _request(self, user: str, temperature: float, seq: int, model_index: int) -> Request:
        config = self.evolution.config
        s = config.sampling
        seed = config.seed * 1_000_003 + seq
        while _key(user, temperature, seed) in self.sent:  # never the same request twice
            seed += 7_919
        self.sent.add(_key(user, temperature, seed))
        return Request(system=self.system, user=user, temperature=temperature, top_p=s.top_p,
                       max_tokens=s.max_tokens, repeat_penalty=s.repeat_penalty, seed=seed,
                       grammar=self.grammars[model_index] if self.grammars else self.grammar)

    def _legacy(self, evolution, seq: int, rng: random.Random) -> Draft:
        config = evolution.config
        shown = evolution.db.select(config.prompt_programs, rng)
        errors = evolution.store.last_errors(evolution.run_id, config.prompt_errors)
        user = user_message(evolution.texts, shown, errors)
        parent = max(shown, key=rank_value)["id"] if shown else None
        request = self._request(user, config.sampling.temperature, seq, 0)
        return Draft(request, parent, {"operator": "legacy", "model": self.model_names[0],
                                       "temperature": request.temperature})

    def _independent(self, evolution, seq: int) -> Draft:
        config = evolution.config
        seeds = [p for p in evolution.db.programs.values() if p.get("origin") == "seed"]
        user = user_message(evolution.texts, seeds, [])
        # the baseline spreads its requests evenly over the models (no bandit: nothing is learned)
        index = seq % len(self.models)
        request = self._request(user, config.sampling.temperature, seq, index)
        return Draft(request, None, {"operator": "independent", "model": self.model_names[index],
                                     "temperature": request.temperature}, index)

    def _operator_draft(self, evolution, seq: int, rng: random.Random) -> Draft:
        config = evolution.config
        texts = evolution.texts
        island = rng.randrange(self.islands.count)
        programs = self.islands.on_island(evolution.db.programs, island) or list(evolution.db.programs.values())
        broken = self._broken(evolution)
        allowed = [op for op in self.bandits["operator"].arms
                   if (op != "fix" or broken is not None) and (op != "crossover" or len(programs) >= 2)
                   and (op not in EDITS or programs)]
        operator = self.bandits["operator"].choose(rng, allowed)
        model_index = self.model_names.index(self.bandits["model"].choose(rng))
        ideas = [ln.strip() for ln in texts.operators.get("ideas", "").splitlines() if ln.strip()]
        fill = {"idea": rng.choice(ideas) if ideas else "a different statistic of the gradient"}
        parent = other = None
        if operator == "fix":
            parent = broken
            fill.update(parent=program_text(broken), error=_error_line(broken))
        elif operator in EDITS:
            parent = self.islands.draw_parent(programs, rng, sharpness=config.parent_sharpness)
            fill.update(parent=program_text(parent), parent_score=f"{parent['fitness']:.4f}")
            if operator == "crossover":
                others = [p for p in evolution.db.programs.values() if p["id"] != parent["id"]]
                other = self.islands.draw_parent(others, rng, sharpness=config.parent_sharpness)
                fill.update(other=program_text(other), other_score=f"{other['fitness']:.4f}")
        exclude = {p["id"] for p in (parent, other) if p is not None}
        pool = [p for p in programs if p["id"] not in exclude]
        k = config.prompt_context + (1 if operator == "explore" else 0)
        context = rng.sample(pool, min(k, len(pool)))
        errors = evolution.store.last_errors(evolution.run_id, config.prompt_errors) if operator != "fix" else []
        user = operator_message(texts, operator, context, errors, fill)
        temperature = float(self.bandits["temperature"].choose(rng))
        repeats = self.islands.recent_repeats(parent["id"]) if parent is not None else 0
        if repeats:
            s = config.sampling
            temperature = min(s.max_temperature, temperature + s.repeat_boost * repeats)
        request = self._request(user, round(temperature, 3), seq, model_index)
        meta = {"operator": operator, "model": self.model_names[model_index], "island": island,
                "temperature": request.temperature, "other_id": other["id"] if other else None}
        return Draft(request, parent["id"] if parent else None, meta, model_index)

    def _commit(self, draft: Draft) -> None:
        """The draft is what goes out: count the draw and keep the prompt to differ from next time."""
        self.last_user = draft.request.user
        if draft.meta.get("operator") == "fix":
            self.fixed.add(draft.parent_id)
        self.islands.note_draw(draft.parent_id if draft.meta.get("operator") != "fix" else None)
        evo = self.evolution
        if self.islands.migrate_due():
            self.islands.migrate(evo.db.programs, best_key)
        self._save()

    def _broken(self, evolution) -> Optional[dict]:
        """The latest rejected or failed program with code (not a repeat), not yet given to fix."""
        for row in reversed(evolution.store.last_errors(evolution.run_id, evolution.config.prompt_errors)):
            if row["status"] in ("rejected", "failed") and row.get("code") and row["id"] not in self.fixed \
                    and row.get("reason") not in ("empty", "junk", "no_code"):
                return row
        return None

    def finish(self, draft: "Draft", generation: Generation) -> Proposal:
        return Proposal(text=generation.text, origin="llm", prompt=draft.request.user, parent_id=draft.parent_id,
                        tokens_in=generation.tokens_in, tokens_out=generation.tokens_out, gen_ms=generation.ms,
                        meta=dict(draft.meta))

    # -- learning from verdicts ----------------------------------------------------------------
    def observe(self, genome, row: dict) -> None:
        """A verdict came back: reward the choices that made the child, place it on its island."""
        if self.evolution is None or row.get("origin") != "llm":
            return
        reward, outcome = self.reward(row)
        for key in ("operator", "model"):
            if row.get(key) is not None and key in self.bandits:
                self.bandits[key].update(row[key], reward)
        if row.get("temperature") is not None and self.mode == "llm":
            # the drawn temperature (before a repeat boost) is what the bandit chose; the nearest arm
            arms = self.bandits["temperature"].arms
            nearest = min(arms, key=lambda a: abs(float(a) - row["temperature"]))
            self.bandits["temperature"].update(nearest, reward)
        if row["status"] == "evaluated":
            self.islands.add(row["id"], row.get("island"))
        if row.get("operator") != "fix":
            self.islands.note_outcome(row.get("parent_id"), outcome)
        self._save()

    def reward(self, row: dict) -> tuple[float, str]:
        """1 for a new program that completed every stage it was sent to, 1 more if it beats its
        parent (on the run's ranking, ``best_key``)."""
        if row["status"] == "duplicate":
            return 0.0, "repeat"
        if row["status"] != "evaluated":
            return 0.0, row["status"]
        parent = self.evolution.db.programs.get(row.get("parent_id")) if row.get("parent_id") else None
        better = parent is not None and _beats(row, parent)
        return (REWARD_MAX if better else 1.0), ("better" if better else "new")

    def close(self) -> None:
        seen = set()
        for _, backend, _ in self.models:
            if id(backend) not in seen:
                seen.add(id(backend))
                backend.close()


def _beats(child: dict, parent: dict) -> bool:
    """On the run's ranking score (store.rank_value: the highest cascade fidelity reached)."""
    return child.get("fitness") is not None and parent.get("fitness") is not None and \
        rank_value(child) > rank_value(parent)


def _t(t: float) -> str:
    return f"{float(t):g}"


def _key(user: str, temperature: float, seed: int) -> str:
    return hashlib.sha1(f"{temperature:.4f}|{seed}|{user}".encode()).hexdigest()


def _error_line(row: dict) -> str:
    where = f" (line {row['line']})" if row.get("line") else ""
    return f"{row.get('stage') or 'gate'}: {row.get('reason')}{where}: {row.get('message')}"
