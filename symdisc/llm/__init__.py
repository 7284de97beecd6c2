"""Text-generation backends behind one small interface.

A backend turns (system, user) messages into a reply. The system message is the same for a whole
run, so backends that cache a prompt prefix (llama.cpp in-process does) only pay for the user part.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional, Protocol

from symdisc.config import SamplingConfig


@dataclass
class Generation:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    ms: float = 0.0
    finish_reason: Optional[str] = None


_SAMPLING = SamplingConfig()  # the defaults live in config.py only


@dataclass
class Request:
    system: str
    user: str
    temperature: float = _SAMPLING.temperature
    top_p: float = _SAMPLING.top_p
    max_tokens: int = _SAMPLING.max_tokens
    repeat_penalty: float = _SAMPLING.repeat_penalty
    seed: Optional[int] = None
    grammar: Optional[str] = None  # GBNF; backends that cannot constrain ignore it


class Backend(Protocol):
    """What a backend declares, besides generating: ``cpus``, the cores one copy of it occupies where it
    runs (0 when the model runs elsewhere or nowhere); ``slots``, the generations it serves at once;
    ``remote``, whether the model runs on a server whose concurrency limit the backend holds (copies in
    several processes would each allow that limit)."""

    name: str
    info: dict  # recorded with the run: model path and sha256, endpoint, ...
    cpus: float
    slots: int
    remote: bool

    def generate(self, request: Request) -> Generation: ...

    def close(self) -> None: ...


class LazyBackend:
    """A backend built on first use from a picklable recipe (a class and its arguments).

    A llama.cpp model cannot be pickled, so a cluster run sends this to each proposer actor, which
    loads its own copy of the model where it runs; ``cpus`` is what such an actor reserves.
    """

    remote = False

    def __init__(self, recipe: Callable[[], "Backend"], info: dict, cpus: float = 1.0, slots: int = 1):
        self.recipe = recipe
        self.info = info
        self.name = info.get("backend", "lazy")
        self.cpus = cpus
        self.slots = slots  # a batched generator: the actor takes this many requests at once
        self._backend = None
        self._lock = threading.Lock()

    def generate(self, request: Request) -> Generation:
        if self._backend is None:
            with self._lock:  # an actor with several slots calls in from several threads
                if self._backend is None:
                    self._backend = self.recipe()
        return self._backend.generate(request)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_backend", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _backend=None, _lock=threading.Lock())


def api_bases(config) -> list:
    """The OpenAI-compatible endpoints of a config (runs saved before ``api_bases`` have one)."""
    return list(getattr(config, "api_bases", None) or ([config.api_base] if config.api_base else []))


def open_backend(config, store=None, say=None, lazy: bool = False):
    """Build the backend a run's config asks for; returns (backend, params_b or None).

    ``say`` gets one-line notes for the user (which model ``auto`` picked, for instance). ``lazy``
    defers loading a llama.cpp model to its first generation (where a cluster's actor runs it).
    """
    say = say or (lambda message: None)
    kind = config.backend
    bases = api_bases(config)
    if kind == "auto":
        kind = "replay" if config.replay_run else ("openai" if bases else "llamacpp")
    if kind == "openai":
        from symdisc.errors import ConfigError
        from symdisc.llm.openai_http import OpenAIBackend

        if not bases:
            raise ConfigError("the openai backend needs --api-base URL")
        limit = getattr(config, "api_concurrency", 1)
        if len(bases) == 1 and limit == 1:
            return OpenAIBackend(bases[0], config.api_model), None
        from symdisc.llm.pool import EndpointPool

        endpoints = [OpenAIBackend(base, config.api_model) for base in bases]
        return EndpointPool(endpoints, limit=limit, say=say), None
    if kind == "replay":
        from symdisc.llm.replay import ReplayBackend

        return ReplayBackend(store, config.replay_run), None
    if kind == "llamacpp":
        from symdisc.llm.catalog import resolve
        from symdisc.llm.llamacpp import LlamaCppBackend

        model = resolve(config.model)
        if config.model == "auto":
            say(f"model: {model.name} ({model.path})")
        args = dict(n_ctx=config.n_ctx, n_threads=config.llm_threads, seed=config.seed, model_name=model.name,
                    model_sha256=model.sha256)
        parallel = int(getattr(config, "parallel", 1) or 1)
        kind_class = LlamaCppBackend
        if parallel > 1:  # several requests decoded together in one context
            from symdisc.llm.batched import BatchedLlamaBackend

            kind_class, args = BatchedLlamaBackend, dict(args, slots=parallel)
        if lazy:
            info = {"backend": "llamacpp", "model": model.name, "model_path": str(model.path),
                    "model_sha256": model.sha256, "n_ctx": config.n_ctx, "n_threads": config.llm_threads,
                    "parallel": parallel}
            return LazyBackend(partial(kind_class, str(model.path), **args), info, slots=parallel), model.params_b
        return kind_class(str(model.path), **args), model.params_b
    from symdisc.errors import ConfigError

    raise ConfigError(f"unknown backend {kind!r} (auto, llamacpp, openai, replay)")
