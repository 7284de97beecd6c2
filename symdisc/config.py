"""Run configuration as dataclasses. Every run stores its config as JSON, so it can be repeated.

No torch here: the CLI imports this module for every command.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from symdisc.contract import BUFFERS, MEMORY_CLASSES, SCALAR
from symdisc.errors import ConfigError


def usable_cpus() -> int:
    """The cores this process may run on: its affinity (as taskset or a container sets it), not the
    machine's count, so that a job pinned to one core does not run two threads on it."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # a platform without affinity
        return os.cpu_count() or 1


@dataclass
class ProxyConfig:
    """The tiny noisy tasks of the proxy fitness (see proxy.py)."""

    seeds: int = 3
    task_seed: int = 1000  # tasks use seeds task_seed .. task_seed + seeds - 1, for every candidate
    # half-decade steps: rules whose natural step sizes differ (SGD, sign rules) meet at their best
    lrs: tuple = (1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1)
    steps: int = 60
    batch: int = 32
    n_train: int = 256
    n_val: int = 512
    dim: int = 16
    hidden: int = 32
    classes: int = 4
    noise: float = 0.2

    def __post_init__(self):
        self.lrs = tuple(float(lr) for lr in self.lrs)  # JSON brings a list


HALF_DECADE = (1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1)


@dataclass
class HeldoutConfig:
    """A real-data stage of the cascade (see judge/realdata.py); the defaults are the funnel's
    held-out stage (stage 3), stored with the run. Training AND validation images both come from
    the data set's training split (disjoint subsets); the test split is never read."""

    dataset: str = "fashion-mnist"
    seeds: int = 2
    seed_base: int = 7000  # disjoint from the proxy's task seeds (1000 ...)
    lrs: tuple = HALF_DECADE  # half-decade steps: rules of different natural step sizes meet at their best
    steps: int = 150
    batch: int = 64
    n_train: int = 2048
    n_val: int = 2000
    hidden: int = 32  # mlp: hidden units; cnn: channels of the first conv (the second has twice as many)
    noise: float = 0.2
    model: str = "mlp"  # mlp | cnn

    def __post_init__(self):
        self.lrs = tuple(float(lr) for lr in self.lrs)


def _stage(**changes) -> dict:
    return dict(asdict(HeldoutConfig()), **changes)


@dataclass
class CascadeConfig:
    """The run's fitness: stages ordered by cost, each promoting only candidates within a margin of
    that stage's best so far (successive halving); a candidate is ranked by the highest stage it
    reached. Real-data stages train on subsets of the TRAINING split and validate on a disjoint
    training subset (see judge/realdata.py); the audit task is never selected on."""

    # stage 3, the funnel's held-out stage, is EvolveConfig.heldout (the whole half-decade lr grid)
    # stage 4: longer, more data, a wider MLP, for the few best; lrs: the half-decades around stage 3's best
    long: dict = field(default_factory=lambda: _stage(hidden=64, n_train=8192, steps=500, seed_base=7100, lrs=()))
    # never selected on: MNIST, 40% label noise, a 784-100-10 MLP; the top few of every run, at run end
    audit: dict = field(default_factory=lambda: _stage(dataset="mnist", noise=0.4, hidden=100, n_train=8192,
                                                       steps=500, seed_base=7200, lrs=()))
    # Margins from `symdisc calibrate` (simulated over 40 arrival orders of the 23-rule library):
    # 0.02/0.01 left the ranking order-dependent (Spearman with the CNN task 0.42..0.80, with the MLP
    # task about 0); 0.05/0.05 gives 0.68..0.70 and 0.27 at 1.8 s per candidate.
    proxy_margin: float = 0.05  # promote to the held-out stage within this much of the best proxy score
    heldout_margin: float = 0.05  # promote to the long stage within this much of the best held-out score
    # A candidate's rank score at fidelity k is the mean of its standardized scores at stages 1..k,
    # (score - center) / scale, with the centre (median) and scale (MAD * 1.4826) of each stage over
    # the calibration library, so evidence from every stage it reached counts (`symdisc calibrate`:
    # the long MLP stage alone does not predict the CNN task, the proxy alone not the MLP task).
    center: dict = field(default_factory=lambda: {"proxy": 0.6777, "heldout": 0.7413, "long": 0.8308})
    scale: dict = field(default_factory=lambda: {"proxy": 0.0174, "heldout": 0.0096, "long": 0.0059})
    # each stage's noise band in its own score (twice the standard error of a difference between two
    # rules over seeds, measured by `symdisc calibrate`)
    min_band: dict = field(default_factory=lambda: {"proxy": 0.027, "heldout": 0.0255, "long": 0.0063})
    audit_top: int = 5

    def combine(self, scores: dict) -> tuple[float, float]:
        """(rank score, its noise band) from the raw scores of the stages a candidate reached."""
        zs, bands = [], []
        for stage, value in scores.items():
            scale = float(self.scale.get(stage) or 1.0)
            zs.append((value - float(self.center.get(stage, 0.0))) / scale)
            bands.append(float(self.min_band.get(stage, 0.0)) / scale)
        n = max(1, len(zs))
        return sum(zs) / n, (sum(b * b for b in bands) ** 0.5) / n

    def on_tasks(self) -> "CascadeConfig":
        """The cascade of a run on task files: stages 3 and 4 score the mean standardized score over
        the tasks (already centred and scaled: symdisc.tasks.norm_of), and no audit task. The margin
        for the long stage is in those units: half the seed rules' spread."""
        from dataclasses import replace

        return replace(self, audit={}, heldout_margin=0.5, center=dict(self.center, heldout=0.0, long=0.0),
                       scale=dict(self.scale, heldout=1.0, long=1.0), min_band=dict(self.min_band, heldout=0.0, long=0.0))

    def worker_specs(self, heldout: Optional[dict] = None) -> dict:
        """What the sandbox worker builds before its lock-down: each real-data stage's config."""
        return {"heldout": dict(heldout) if heldout is not None else asdict(HeldoutConfig()),
                "long": dict(self.long), "audit": dict(self.audit)}


@dataclass
class SamplingConfig:
    """Sampling settings: the only place their defaults are written (backends' Request reads them)."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 320
    repeat_penalty: float = 1.05  # mild: code repeats names legitimately, but not whole terms
    grammar: Optional[bool] = None  # None: on for models under 2B parameters
    # The llm proposer draws each request's temperature from this set (a bandit picks), and raises
    # it by repeat_boost per repeat in a row among the parent's last children, up to max_temperature.
    temperatures: list = field(default_factory=lambda: [0.6, 0.9, 1.2])
    repeat_boost: float = 0.3
    max_temperature: float = 1.6


# Search strategies (symdisc.search.proposers). llm: operators, islands, weighted parents and a
# bandit; llm-legacy: the loop without them (the best programs and the last errors in every
# prompt); llm-independent: the seed prompt sampled independently every time, the baseline to beat.
SCHEDULES = ("constant", "warmup-cosine")  # bench learning-rate schedules (judge/training.lr_factor)

PROPOSERS = ("llm", "genome", "tpe", "random", "llm-legacy", "llm-independent", "mutate", "hybrid", "rl")
# A search on task files (symdisc.tasks): fidelity 2 ("heldout") trains every task at a quarter of
# its STEPS on the whole half-decade lr grid, stage 4 ("long") at its full STEPS on the half-decades
# around stage 3's best lr.
TASK_FIDELITIES = {"heldout": {"fraction": 0.25, "seeds": 2}, "long": {"fraction": 1.0, "seeds": 2}}
LLM_PROPOSERS = ("llm", "llm-legacy", "llm-independent", "hybrid")  # the strategies that need a model


@dataclass
class MutationConfig:
    """The mutation engine's populations (search/population.py) and constant fitting (search/fitting.py)."""

    size: int = 24  # programs per island; the oldest retires when a new one joins (aging evolution)
    tournament: int = 4  # parents: the best of this many drawn from an island
    parsimony: float = 0.01  # rank-value points taken off per AST node of update, in tournaments
    migrate_every: int = 48  # proposals between migrations of each island's best to the next island
    fit_top: float = 0.1  # fit the constants of programs in this top fraction of the run's proxy scores
    fit_trials: int = 12  # proxy evaluations per fit
    fit_dims: int = 8  # at most this many fitted numbers (constants plus the lr multiplier)
    fit_seeds: bool = True  # fit the built-in seeds when a run starts


def parse_seed_rules(text: Optional[str]) -> Optional[list]:
    """``--seeds sgd,sign_sgd`` as a list (None when the option was not given)."""
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def check_seed_rules(names: Optional[list], memory: str) -> list:
    """The built-in rules a run starts from: the memory class's default seeds when ``names`` is None;
    otherwise ``names``, each a built-in rule (``sign-sgd`` and ``sign_sgd`` are the same one)."""
    from symdisc import rules

    if names is None:
        return list(rules.SEEDS[memory])
    known = rules.names()
    chosen = []
    for name in names:
        canonical = name.replace("-", "_")
        if canonical not in known:
            raise ConfigError(f"--seeds: unknown rule {name!r} (built-in rules: {', '.join(known)})")
        if canonical not in chosen:
            chosen.append(canonical)
    if not chosen:
        raise ConfigError("--seeds needs at least one built-in rule")
    return chosen


@dataclass
class EvolveConfig:
    model: str = "auto"
    models: list = field(default_factory=list)  # every --model where several were given (model is the first)
    api_base: Optional[str] = None  # an OpenAI-compatible server instead of in-process llama.cpp (the first)
    api_bases: list = field(default_factory=list)  # every --api-base, used round-robin
    api_concurrency: int = 1  # requests at once per endpoint
    api_model: Optional[str] = None
    backend: str = "auto"  # auto | llamacpp | openai | fake | replay
    replay_run: Optional[str] = None
    # mutate: the strategy whose best beat every fitted seed in each repeat of benchmarks/search_compare.py
    # (docs/measurements.md, "Does a search beat its fitted seeds?")
    proposer: str = "mutate"
    memory: str = SCALAR
    # buffers class: the most tensors shaped like the parameter the state may hold (1: Lion's memory);
    # None: as many as the class allows
    max_buffers: Optional[int] = None
    candidates: Optional[int] = 50
    minutes: Optional[float] = None
    evaluations: Optional[int] = None  # budget in sandbox evaluations (what `symdisc compare` equalizes)
    seed: int = 0
    # built-in rules (symdisc/rules/) that start the population; None: rules.SEEDS of the memory class
    seed_rules: Optional[list] = None
    funnel: bool = True  # candidates that beat the incumbent also get the held-out real-data score
    prompt_programs: int = 4  # best programs shown to the model
    prompt_errors: int = 3  # the design card's "controlled amnesia": only the last three errors
    # The llm proposer: operators drawn by a bandit, parents by weight, islands.
    operators: list = field(default_factory=lambda: ["explore", "mutate", "crossover", "constants", "simplify",
                                                     "fix"])
    islands: int = 3
    migrate_every: int = 12  # proposals between migrations of each island's best to the next island
    prompt_context: int = 2  # programs shown beside the parent (drawn anew for every prompt)
    parent_sharpness: float = 10.0  # ShinkaEvolve's lambda: how strongly parent weights favour fitness
    n_ctx: int = 4096
    llm_threads: int = field(default_factory=usable_cpus)
    parallel: int = 1  # requests decoded together by in-process llama.cpp (--parallel; see llm/batched.py)
    sandbox_timeout_s: float = 30.0
    sandbox_memory_mb: int = 2048
    cluster: str = "local"  # local (one process, no Ray) | auto | a Ray address such as HEAD:6379
    proposers: Optional[int] = None  # cluster: proposer actors (None: one per node for llama.cpp, else one)
    evaluators: Optional[int] = None  # cluster: evaluator actors (None: the cluster's free CPUs)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    mutation: MutationConfig = field(default_factory=MutationConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)
    # --task: task files selected on instead of the built-in real-data stages (symdisc.tasks.Task
    # dicts); per stage its fraction of STEPS and seeds; the seed rules' (centre, scale) per stage and
    # task, set once the seeds are scored; the wall clock of one task stage.
    tasks: list = field(default_factory=list)
    task_fidelities: dict = field(default_factory=lambda: {k: dict(v) for k, v in TASK_FIDELITIES.items()})
    task_norms: dict = field(default_factory=dict)
    task_timeout_s: float = 600.0

    def validate(self) -> "EvolveConfig":
        if self.proposer not in PROPOSERS:
            raise ConfigError(f"proposer must be one of {', '.join(PROPOSERS)}, not {self.proposer!r}")
        if self.memory not in MEMORY_CLASSES:
            raise ConfigError(f"memory must be one of {', '.join(MEMORY_CLASSES)}, not {self.memory!r}")
        if self.max_buffers is not None:
            if self.memory != BUFFERS:
                raise ConfigError("--max-buffers limits the buffers class: give --memory buffers")
            if self.max_buffers < 1:
                raise ConfigError("--max-buffers must be at least 1 (no buffers at all is the scalar class)")
        if self.candidates is None and self.minutes is None and self.evaluations is None:
            raise ConfigError("give a budget: --candidates N and/or --minutes M")
        if self.candidates is not None and self.candidates < 1:
            raise ConfigError("--candidates must be at least 1")
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError("--minutes must be positive")
        from symdisc.contract import OPERATORS

        for op in self.operators:
            if op not in OPERATORS or op in ("legacy", "independent"):
                raise ConfigError(f"unknown operator {op!r}")
        if not self.operators:
            raise ConfigError("give at least one operator")
        if self.islands < 1 or self.migrate_every < 1:
            raise ConfigError("--islands and the migration interval must be at least 1")
        if not self.sampling.temperatures:
            raise ConfigError("give at least one temperature")
        if self.parallel < 1:
            raise ConfigError("--parallel must be at least 1")
        if self.api_concurrency < 1:
            raise ConfigError("--api-concurrency must be at least 1")
        for name in ("proposers", "evaluators"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1")
        if not self.cluster:
            raise ConfigError("--cluster must be local, auto or a Ray address (HOST:PORT)")
        self.seed_rules = check_seed_rules(self.seed_rules, self.memory)
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    # What --resume may change: where the run executes and how far it goes. Everything else is the
    # saved run's own (its model, prompts, proxy, seed), so a resumed run stays the same experiment.
    RESUME_OVERRIDES = ("cluster", "proposers", "evaluators", "candidates", "minutes", "backend", "parallel")

    @classmethod
    def resumed(cls, saved: dict, overrides: Optional[dict] = None) -> "EvolveConfig":
        """A saved run's config (``prompts`` left out) with the options given on --resume applied."""
        config = cls.from_dict({k: v for k, v in saved.items() if k != "prompts"})
        for key, value in (overrides or {}).items():
            if key not in cls.RESUME_OVERRIDES:
                raise ConfigError(f"--resume cannot change {key}")
            if value is not None:
                setattr(config, key, value)
        return config

    @classmethod
    def from_dict(cls, data: dict) -> "EvolveConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("proposer", "llm")  # a run stored before proposers could be chosen: the model's
        values["sampling"] = SamplingConfig(**data.get("sampling", {}))
        values["mutation"] = MutationConfig(**data.get("mutation", {}))
        values["proxy"] = ProxyConfig(**data.get("proxy", {}))
        values["heldout"] = HeldoutConfig(**data.get("heldout", {}))
        if "cascade" in data:
            values["cascade"] = CascadeConfig(**data["cascade"])
        elif "proxy" in data:
            # a run stored before the cascade: no long stage, no audit (its held-out stage is its own)
            values["cascade"] = CascadeConfig(long={}, audit={})
        return cls(**values)


@dataclass
class BenchConfig:
    """`symdisc bench`: what is compared, on what, with which budget."""

    candidates: list = field(default_factory=list)
    against: list = field(default_factory=lambda: ["adam"])
    task: str = "fmnist-noisy"  # one bench task or several, comma-separated (a performance profile across them)
    tasks: list = field(default_factory=list)  # task files (--task FILE.py or a built-in task file's name)
    noise: Optional[float] = None  # None: the task's own rate (0.2 for fmnist-noisy)
    seeds: int = 5
    epochs: Optional[float] = 3
    steps: Optional[int] = None  # overrides epochs
    batch: int = 128
    tuner: str = "grid"  # grid (log grid of lr, widened past an edge best), tpe, or none (documented defaults)
    lr_grid: str = "1e-5:1:2"  # LO:HI:PER_DECADE or a comma-separated list (bench/tune.py)
    max_widen: int = 6  # grid points the tuner may add past an edge
    tpe_trials: int = 20  # --tuner tpe: trials per optimizer (more than its random start-up trials)
    weight_decays: list = field(default_factory=lambda: [0.0])  # decoupled, tuned as a second axis
    tune_steps: Optional[int] = None  # training steps per tuning trial; None: --tune-epochs or as long as the run
    tune_epochs: Optional[float] = None  # epochs per tuning trial over the tuning data
    tune_subset: Optional[int] = None  # training examples the tuning draws from (None: as the final runs)
    val_fraction: float = 0.1  # of the training data, held out to tune on and to early-stop by
    reference: Optional[str] = None  # whose final validation score is the target (None: first --against)
    lr: dict = field(default_factory=dict)  # explicit learning rates by optimizer label
    suite: Optional[str] = None  # evo-optimizer
    subset: Optional[int] = None  # training examples (the suite uses 15,000)
    data_dir: Optional[str] = None
    threads: int = field(default_factory=usable_cpus)
    evals_per_epoch: int = 2
    # Rules from a model, a run, a candidate or a contract-form file train inside the sandbox worker.
    unsandboxed: bool = False  # --unsandboxed: train them in this process (code the user has read)
    sandbox_memory_mb: int = 4096  # address space for the training worker, beyond its loaded data
    epoch_timeout_s: float = 600.0  # wall clock per epoch in the worker
    schedule: str = "constant"  # one of SCHEDULES, for every optimizer alike (judge/training.py)
