"""A scripted backend for tests: replies come from a list (cycled) or a function of the request."""

from __future__ import annotations

import time
from typing import Callable, Sequence, Union

from symdisc.llm import Generation, Request


class ScriptedBackend:
    name = "fake"
    cpus, slots, remote = 0.0, 1, False

    def __init__(self, replies: Union[Sequence[str], Callable[[Request, int], str]], delay_s: float = 0.0,
                 by_seed: bool = False):
        self.replies = replies
        self.delay_s = delay_s
        # by_seed: the reply follows the request's seed (so the candidate's seq), not the call count,
        # so that copies in several proposer actors do not all replay the list from its start.
        self.by_seed = by_seed
        self.calls = 0
        self.requests: list[Request] = []
        self.info = {"backend": "fake", "model": "scripted", "model_sha256": None}

    def generate(self, request: Request) -> Generation:
        self.requests.append(request)
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        n = request.seed if self.by_seed and request.seed is not None else self.calls
        if callable(self.replies):
            text = self.replies(request, n)
        else:
            text = self.replies[n % len(self.replies)]
        self.calls += 1
        return Generation(text=text, tokens_in=len(request.user) // 4, tokens_out=len(text) // 4,
                          ms=(time.perf_counter() - t0) * 1e3, finish_reason="stop")

    # The batched generator's interface (llm/batched.py), for tests of --parallel: requests are
    # answered in the order given, ``wait`` hands back the oldest ``per_wait`` of them.
    per_wait = 1

    def submit(self, request: Request) -> int:
        self._waiting = getattr(self, "_waiting", [])
        self._tickets = getattr(self, "_tickets", 0) + 1
        self._waiting.append((self._tickets, request))
        return self._tickets

    def wait(self) -> list:
        done, self._waiting = self._waiting[:self.per_wait], self._waiting[self.per_wait:]
        return [(ticket, self.generate(request)) for ticket, request in done]

    def close(self) -> None:
        pass
