"""What runs inside the Ray actors of a cluster run: a proposer holds one backend, an evaluator one
sandbox worker. Plain classes, wrapped with ``ray.remote`` by ``cluster.py``, so this module needs
no Ray and the actors need nothing of the driver's state (the database stays with the driver).
"""

from __future__ import annotations

import socket


class ProposerActor:
    """Turns requests into replies with its own copy of the driver's backend (a ``LazyBackend``
    loads its llama.cpp model here, on the actor's node)."""

    def __init__(self, backend):
        self.backend = backend

    def ready(self) -> str:
        return socket.gethostname()

    def generate(self, request):
        return self.backend.generate(request)


class EvaluatorActor:
    """Owns one locked-down sandbox worker, started here (one torch thread, OMP passive: the worker's
    environment is set by ``Sandbox.start`` whatever the actor's is)."""

    def __init__(self, timeout_s: float, memory_mb: int, heldout: bool, cascade=None):
        from symdisc.judge.sandbox import Sandbox

        self.sandbox = Sandbox(timeout_s=timeout_s, memory_mb=memory_mb, heldout=heldout, cascade=cascade)
        self.sandbox.start()

    def ready(self) -> str:
        return socket.gethostname()

    def evaluate(self, code: str, args: dict) -> dict:
        return self.sandbox.evaluate(code, **args)
