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
