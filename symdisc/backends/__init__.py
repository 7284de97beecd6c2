"""Text-generation backends behind one small interface.

A backend turns (system, user) messages into a reply. The system message is the same for a whole
run, so backends that cache a prompt prefix (llama.cpp in-process does) only pay for the user part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol


@dataclass
class Generation:
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    ms: float = 0.0
    finish_reason: Optional[str] = None


@dataclass
class Request:
    system: str
    user: str
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 320
    repeat_penalty: float = 1.0
    seed: Optional[int] = None
    grammar: Optional[str] = None  # GBNF; backends that cannot constrain ignore it


class Backend(Protocol):
    name: str
    info: dict  # recorded with the run: model path and sha256, endpoint, ...

    def generate(self, request: Request) -> Generation: ...

    def close(self) -> None: ...


@dataclass
class BackendInfo:
    name: str
    model: Optional[str] = None
    model_sha256: Optional[str] = None
    params_b: Optional[float] = None
    extra: dict = field(default_factory=dict)


def open_backend(config, store=None, say=None):
    """Build the backend a run's config asks for; returns (backend, params_b or None).

    ``say`` gets one-line notes for the user (which model ``auto`` picked, for instance).
    """
    say = say or (lambda message: None)
    kind = config.backend
    if kind == "auto":
        kind = "replay" if config.replay_run else ("openai" if config.api_base else "llamacpp")
    if kind == "openai":
        from ..errors import ConfigError
        from .openai_http import OpenAIBackend

        if not config.api_base:
            raise ConfigError("the openai backend needs --api-base URL")
        return OpenAIBackend(config.api_base, config.api_model), None
    if kind == "replay":
        from .replay import ReplayBackend

        return ReplayBackend(store, config.replay_run), None
    if kind == "llamacpp":
        from ..models import resolve
        from .llamacpp import LlamaCppBackend

        model = resolve(config.model)
        if config.model == "auto":
            say(f"model: {model.name} ({model.path})")
        backend = LlamaCppBackend(str(model.path), n_ctx=config.n_ctx, n_threads=config.llm_threads,
                                  seed=config.seed, model_name=model.name, model_sha256=model.sha256)
        return backend, model.params_b
    from ..errors import ConfigError

    raise ConfigError(f"unknown backend {kind!r} (auto, llamacpp, openai, replay)")
