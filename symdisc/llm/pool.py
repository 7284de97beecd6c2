"""Several model servers behind one backend: round-robin, a concurrency limit per server, failover.

Each request goes to the next server in turn that has a free slot (``limit`` requests at once per
server); when every live server is full, the caller waits. A server that fails is reported in one
line, skipped for ``cooldown_s`` and the request goes to the next one; only when every server has
failed the same request does ``generate`` raise a BackendError. Thread-safe, so one pool can serve
several generations at once (the cluster's proposer actor does), and it needs no Ray.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional, Sequence

from symdisc.errors import BackendError, ConfigError
from symdisc.llm import Generation, Request


def _say(message: str) -> None:
    print(f"symdisc: {message}", file=sys.stderr, flush=True)


class EndpointPool:
    name = "pool"
    cpus, remote = 0.0, True

    def __init__(self, backends: Sequence, limit: int = 1, cooldown_s: float = 30.0,
                 say: Optional[Callable[[str], None]] = None):
        if not backends:
            raise ConfigError("an endpoint pool needs at least one endpoint")
        if limit < 1:
            raise ConfigError("the per-endpoint concurrency limit must be at least 1")
        self.backends = list(backends)
        self.limit = limit
        self.cooldown_s = cooldown_s
        self.say = say or _say
        self.slots = limit * len(self.backends)  # generations this pool can run at once
        first = getattr(self.backends[0], "info", {}) or {}
        self.info = dict(first, api_base=", ".join(self._label(i) for i in range(len(self.backends))))
        self._setup()

    def _setup(self) -> None:
        self._cond = threading.Condition()
        self._busy = [0] * len(self.backends)
        self._down_until = [0.0] * len(self.backends)
        self._next = 0

    # A pool is sent to proposer actors by pickling: locks cannot travel, so each copy makes its own.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for key in ("_cond", "_busy", "_down_until", "_next"):
            state.pop(key, None)
        if state.get("say") is not _say:
            state["say"] = _say  # the driver's console does not travel either
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def _label(self, i: int) -> str:
        b = self.backends[i]
        return (getattr(b, "info", {}) or {}).get("api_base") or getattr(b, "url", None) or f"endpoint {i}"

    def _acquire(self, tried: set) -> int:
        """The next untried endpoint in turn with a free slot; waits while the live ones are full.
        Endpoints in their cooldown are used only when no live one is left to try."""
        with self._cond:
            while True:
                now = time.monotonic()
                order = [(self._next + k) % len(self.backends) for k in range(len(self.backends))]
                untried = [i for i in order if i not in tried]
                live = [i for i in untried if self._down_until[i] <= now]
                for i in live or untried:
                    if self._busy[i] < self.limit:
                        self._busy[i] += 1
                        self._next = (i + 1) % len(self.backends)
                        return i
                self._cond.wait(timeout=1.0)  # a slot frees up, or a cooldown ends

    def _release(self, i: int, failed: bool) -> None:
        with self._cond:
            self._busy[i] -= 1
            if failed:
                self._down_until[i] = time.monotonic() + self.cooldown_s
            else:
                self._down_until[i] = 0.0
            self._cond.notify_all()

    def generate(self, request: Request) -> Generation:
        tried: set = set()
        errors = []
        while len(tried) < len(self.backends):
            i = self._acquire(tried)
            tried.add(i)
            try:
                out = self.backends[i].generate(request)
            except BackendError as exc:
                self._release(i, failed=True)
                errors.append(str(exc))
                left = len(self.backends) - len(tried)
                if left:
                    self.say(f"endpoint {self._label(i)} failed ({exc}); going on with the other {left}")
                continue
            self._release(i, failed=False)
            return out
        raise BackendError(f"every endpoint failed: {'; '.join(errors)}")

    def close(self) -> None:
        for b in self.backends:
            b.close()
