"""Run configuration as dataclasses. Every run stores its config as JSON, so it can be repeated.

No torch here: the CLI imports this module for every command.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Optional

from symdisc.contract import MEMORY_CLASSES, SCALAR
from symdisc.errors import ConfigError


@dataclass
class ProxyConfig:
    """The tiny noisy tasks of the proxy fitness (see proxy.py)."""

    seeds: int = 3
    task_seed: int = 1000  # tasks use seeds task_seed .. task_seed + seeds - 1, for every candidate
    lrs: tuple = (1e-3, 1e-2, 1e-1)
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


@dataclass
class HeldoutConfig:
    """The funnel's held-out real-data stage (see judge/heldout.py); stored with the run."""

    dataset: str = "fashion-mnist"
    seeds: int = 2
    seed_base: int = 7000  # disjoint from the proxy's task seeds (1000 ...)
    lrs: tuple = (1e-4, 1e-3, 1e-2, 1e-1)
    steps: int = 150
    batch: int = 64
    n_train: int = 2048
    n_val: int = 2000
    hidden: int = 32
    noise: float = 0.2

    def __post_init__(self):
        self.lrs = tuple(float(lr) for lr in self.lrs)


@dataclass
class SamplingConfig:
    """Sampling settings: the only place their defaults are written (backends' Request reads them)."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 320
    repeat_penalty: float = 1.05  # mild: code repeats names legitimately, but not whole terms
    grammar: Optional[bool] = None  # None: on for models under 2B parameters


PROPOSERS = ("llm", "genome", "tpe", "random")  # search strategies (symdisc.search.proposers)


@dataclass
class EvolveConfig:
    model: str = "auto"
    api_base: Optional[str] = None  # an OpenAI-compatible server instead of in-process llama.cpp (the first)
    api_bases: list = field(default_factory=list)  # every --api-base, used round-robin
    api_concurrency: int = 1  # requests at once per endpoint
    api_model: Optional[str] = None
    backend: str = "auto"  # auto | llamacpp | openai | fake | replay
    replay_run: Optional[str] = None
    proposer: str = "llm"
    memory: str = SCALAR
    candidates: Optional[int] = 50
    minutes: Optional[float] = None
    evaluations: Optional[int] = None  # budget in sandbox evaluations (what `symdisc compare` equalizes)
    seed: int = 0
    funnel: bool = True  # candidates that beat the incumbent also get the held-out real-data score
    prompt_programs: int = 4  # best programs shown to the model
    prompt_errors: int = 3  # the design card's "controlled amnesia": only the last three errors
    n_ctx: int = 4096
    llm_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    sandbox_timeout_s: float = 30.0
    sandbox_memory_mb: int = 2048
    cluster: str = "local"  # local (one process, no Ray) | auto | a Ray address such as HEAD:6379
    proposers: Optional[int] = None  # cluster: proposer actors (None: one per node for llama.cpp, else one)
    evaluators: Optional[int] = None  # cluster: evaluator actors (None: the cluster's free CPUs)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    heldout: HeldoutConfig = field(default_factory=HeldoutConfig)

    def validate(self) -> "EvolveConfig":
        if self.proposer not in PROPOSERS:
            raise ConfigError(f"proposer must be one of {', '.join(PROPOSERS)}, not {self.proposer!r}")
        if self.memory not in MEMORY_CLASSES:
            raise ConfigError(f"memory must be one of {', '.join(MEMORY_CLASSES)}, not {self.memory!r}")
        if self.candidates is None and self.minutes is None and self.evaluations is None:
            raise ConfigError("give a budget: --candidates N and/or --minutes M")
        if self.candidates is not None and self.candidates < 1:
            raise ConfigError("--candidates must be at least 1")
        if self.minutes is not None and self.minutes <= 0:
            raise ConfigError("--minutes must be positive")
        if self.api_concurrency < 1:
            raise ConfigError("--api-concurrency must be at least 1")
        for name in ("proposers", "evaluators"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1")
        if not self.cluster:
            raise ConfigError("--cluster must be local, auto or a Ray address (HOST:PORT)")
        return self

    def as_dict(self) -> dict:
        return asdict(self)

    # What --resume may change: where the run executes and how far it goes. Everything else is the
    # saved run's own (its model, prompts, proxy, seed), so a resumed run stays the same experiment.
    RESUME_OVERRIDES = ("cluster", "proposers", "evaluators", "candidates", "minutes", "backend")

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
        values["sampling"] = SamplingConfig(**data.get("sampling", {}))
        values["proxy"] = ProxyConfig(**data.get("proxy", {}))
        values["heldout"] = HeldoutConfig(**data.get("heldout", {}))
        return cls(**values)


@dataclass
class BenchConfig:
    """`symdisc bench`: what is compared, on what, with which budget."""

    candidates: list = field(default_factory=list)
    against: list = field(default_factory=lambda: ["adam"])
    task: str = "fmnist-noisy"
    noise: Optional[float] = None  # None: the task's own rate (0.2 for fmnist-noisy)
    seeds: int = 3
    epochs: Optional[float] = 3
    steps: Optional[int] = None  # overrides epochs
    batch: int = 128
    tune: int = 0  # Optuna TPE trials per optimizer; 0 = each optimizer's default lr
    tune_steps: int = 300  # training steps per tuning trial
    lr: dict = field(default_factory=dict)  # explicit learning rates by optimizer label
    suite: Optional[str] = None  # evo-optimizer
    subset: Optional[int] = None  # training examples (the suite uses 15,000)
    data_dir: Optional[str] = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    evals_per_epoch: int = 1
