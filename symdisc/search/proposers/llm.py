"""The language-model proposer: the design card's loop (best programs + last three errors)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional

from symdisc.llm import Generation, Request
from symdisc.search.prompting import UPDATE_GRAMMAR, grammar_enabled, user_message
from symdisc.search.proposers import Proposal
from symdisc.store import rank_value


@dataclass
class Draft:
    """A proposal before the model has answered."""

    request: Request
    parent_id: Optional[int] = None


class LLMProposer:
    name = "llm"

    def __init__(self, backend, params_b: Optional[float] = None):
        self.backend = backend
        self.params_b = params_b
        self.info = dict(getattr(backend, "info", {}) or {})
        self.system = ""
        self.grammar: Optional[str] = None

    def start(self, evolution) -> None:
        self.system = evolution.texts.system_message()
        enabled = grammar_enabled(evolution.config.sampling.grammar, self.params_b)
        self.grammar = UPDATE_GRAMMAR if enabled else None

    def propose(self, evolution, seq: int) -> Proposal:
        draft = self.prepare(evolution, seq)
        return self.finish(draft, self.backend.generate(draft.request))

    def prepare(self, evolution, seq: int) -> "Draft":
        """The request for candidate ``seq``, built from the database as it stands now (the cluster
        loop sends it to a proposer actor and calls ``finish`` with the answer)."""
        config = evolution.config
        rng = random.Random(config.seed * 1_000_003 + seq)
        shown = evolution.db.select(config.prompt_programs, rng)
        errors = evolution.store.last_errors(evolution.run_id, config.prompt_errors)
        user = user_message(evolution.texts, shown, errors)
        s = config.sampling
        request = Request(system=self.system, user=user, temperature=s.temperature, top_p=s.top_p,
                          max_tokens=s.max_tokens, repeat_penalty=s.repeat_penalty, seed=config.seed * 1_000_003 + seq,
                          grammar=self.grammar)
        parent = max(shown, key=rank_value)["id"] if shown else None
        return Draft(request, parent)

    def finish(self, draft: "Draft", generation: Generation) -> Proposal:
        return Proposal(text=generation.text, origin="llm", prompt=draft.request.user, parent_id=draft.parent_id,
                        tokens_in=generation.tokens_in, tokens_out=generation.tokens_out, gen_ms=generation.ms)

    def observe(self, genome, row: dict) -> None:
        pass  # the model learns from the database: its prompt reads the best programs and last errors

    def close(self) -> None:
        self.backend.close()
