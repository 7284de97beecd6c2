"""Search strategies behind one small interface: each proposes candidate source text.

``llm`` asks a language model; ``mutate`` edits the run's programs (search/mutations.py); ``hybrid``
runs both, the model in the background; ``genome`` runs a genetic algorithm over optimizer genomes;
``tpe`` samples the same genome space with Optuna's TPE; ``random`` samples it uniformly. All
write the same run tables, and every proposal goes through the same gate, sandbox and funnel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

from symdisc.config import LLM_PROPOSERS, PROPOSERS  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class Abilities:
    """What a source of programs can do; the loop reads this instead of probing for methods.

    ``batched``: it hands out requests (``prepare``) that a model decodes several at a time
    (``submit``/``wait``) and turns the answers into proposals (``finish``). ``asynchronous``: its
    proposals arrive on their own while the loop judges others (``poll``). ``needs_model``: it cannot
    run without a text-generation backend."""

    batched: bool = False
    asynchronous: bool = False
    needs_model: bool = False


@dataclass
class Proposal:
    text: str  # a model reply, or generated source
    origin: str  # llm | genome | tpe | random
    prompt: Optional[str] = None
    parent_id: Optional[int] = None
    genome: Optional[dict] = None  # genome proposers: {"genome": {...}, "trial": n}
    tokens_in: int = 0
    tokens_out: int = 0
    gen_ms: float = 0.0
    meta: dict = field(default_factory=dict)  # llm: operator, model, island, temperature, other_id (columns)


class Proposer(Protocol):
    name: str
    info: dict  # recorded with the run (model, backend, ...)
    abilities: Abilities

    def start(self, evolution) -> None: ...  # the run exists now (and may be a resumed one)

    def propose(self, evolution, seq: int) -> Proposal: ...

    def observe(self, genome: Optional[dict], row: dict) -> None: ...  # a verdict came back

    # asynchronous sources only: ``poll`` hands over the proposals that arrived, ``stop`` ends the
    # background work when the run ends (``close`` also releases the model)

    def close(self) -> None: ...


def make_proposer(name: str, backend=None, params_b: Optional[float] = None, models=None):
    """A proposer by name; the model-backed ones wrap a text-generation backend (or ``models``:
    [(name, backend, params_b)] for a bandit over several)."""
    from symdisc.errors import ConfigError

    if name in LLM_PROPOSERS:
        from symdisc.search.proposers.llm import LLMProposer

        if backend is None and not models:
            raise ConfigError(f"the {name} proposer needs a model backend")
        if name == "hybrid":
            from symdisc.search.proposers.hybrid import HybridProposer

            return HybridProposer(LLMProposer(backend, params_b, mode="llm", models=models))
        return LLMProposer(backend, params_b, mode=name, models=models)
    if name == "mutate":
        from symdisc.search.proposers.mutate import MutateProposer

        return MutateProposer()
    if name == "rl":
        from symdisc.search.proposers.rl import RLProposer

        return RLProposer()
    if name == "genome":
        from symdisc.search.proposers.genetic import GeneticProposer

        return GeneticProposer()
    if name == "random":
        from symdisc.search.proposers.genetic import RandomProposer

        return RandomProposer()
    if name == "tpe":
        from symdisc.search.proposers.tpe import TPEProposer

        return TPEProposer()
    raise ConfigError(f"unknown proposer {name!r} (one of {', '.join(PROPOSERS)})")
