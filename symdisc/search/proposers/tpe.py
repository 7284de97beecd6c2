"""Optuna's TPE sampler over the genome space, with its storage in the run's SQLite database.

The study is named ``symdisc-<run id>`` and lives in the same file as the run (Optuna's own tables
beside symdisc's), so ``--resume`` continues it and Optuna's tools can inspect it:
``optuna.load_study(study_name="symdisc-RUN", storage="sqlite:///runs/symdisc.db")``.
"""

from __future__ import annotations

from typing import Optional

from symdisc.search.genome import MAX_TERMS, RANGES, SCALAR_TERMS, TERMS, Genome, to_source
from symdisc.search.proposers import Abilities, Proposal
from symdisc.store import rank_value

FAILED_VALUE = 0.0  # rejected or failed candidates score zero



def startup_trials(budget: int) -> int:
    """Random trials before TPE starts modelling. Optuna's default is 10, which for budgets of ~20 is
    half the run spent on random search; a third of the budget (at least 3, at most 10) seeds TPE."""
    return min(10, max(3, budget // 3))

class TPEProposer:
    name = "tpe"
    info = {"backend": "tpe", "model": None}
    abilities = Abilities()

    def __init__(self):
        self.study = None

    def start(self, evolution) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(f"sqlite:///{evolution.store.path}",
                                             engine_kwargs={"connect_args": {"timeout": 30}})
        config = evolution.config
        budget = config.evaluations or config.candidates or 30  # a --minutes run: a typical size
        sampler = optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=startup_trials(budget))
        self.study = optuna.create_study(study_name=f"symdisc-{evolution.run_id}", storage=storage,
                                         sampler=sampler, direction="maximize", load_if_exists=True)

    def _close_stale_trials(self) -> None:
        """Trials a killed session left running, whose candidates never got stored: mark them failed."""
        import optuna

        for trial in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            self.study.tell(trial.number, state=optuna.trial.TrialState.FAIL)

    def propose(self, evolution, seq: int) -> Proposal:
        if seq == evolution.first_proposal_seq:
            self._close_stale_trials()
        trial = self.study.ask()
        terms = SCALAR_TERMS if evolution.config.memory == "scalar" else TERMS
        n = trial.suggest_int("n_terms", 1, MAX_TERMS)
        # Every slot is always sampled, so the space is the same for every trial (TPE likes that).
        slots = [(trial.suggest_categorical(f"term{i}", list(terms)),
                  trial.suggest_float(f"alpha{i}", *RANGES["alpha"], log=True)) for i in range(MAX_TERMS)]
        genome = Genome(
            terms=[t for t, _ in slots[:n]], alphas=[round(a, 4) for _, a in slots[:n]],
            gain_log10=trial.suggest_float("gain_log10", *RANGES["gain_log10"]),
            eps_log10=trial.suggest_float("eps_log10", *RANGES["eps_log10"]),
            wd_log10=trial.suggest_float("wd_log10", *RANGES["wd_log10"]),
            beta1=trial.suggest_float("beta1", *RANGES["beta1"]),
            beta2=trial.suggest_float("beta2", *RANGES["beta2"]),
            use_wd=trial.suggest_categorical("use_wd", [False, True]),
            bias_correction=trial.suggest_categorical("bias_correction", [False, True]),
            clip=trial.suggest_categorical("clip", [False, True]),
            clip_value=trial.suggest_float("clip_value", *RANGES["clip_value"], log=True),
            warmup=trial.suggest_categorical("warmup", [False, True]),
            warmup_steps=trial.suggest_int("warmup_steps", *RANGES["warmup_steps"]),
            cosine=trial.suggest_categorical("cosine", [False, True]))
        return Proposal(text=to_source(genome), origin=self.name,
                        genome={"genome": genome.as_dict(), "trial": trial.number})

    def observe(self, genome: Optional[dict], row: dict) -> None:
        if not genome or "trial" not in genome:
            return
        import optuna

        # the run's own order (fidelity reached, then the score there); behavioural twins keep theirs
        value = rank_value(row) if row["fitness"] is not None else FAILED_VALUE
        try:
            self.study.tell(genome["trial"], value)
        except (ValueError, RuntimeError, optuna.exceptions.OptunaError):
            pass  # already told (a resumed run re-judging a stored candidate)

    def close(self) -> None:
        pass
