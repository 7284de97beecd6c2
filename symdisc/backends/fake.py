"""A scripted backend for tests: replies come from a list (cycled) or a function of the request."""

from __future__ import annotations

import time
from typing import Callable, Sequence, Union

from . import Generation, Request


class ScriptedBackend:
    name = "fake"

    def __init__(self, replies: Union[Sequence[str], Callable[[Request, int], str]], delay_s: float = 0.0):
        self.replies = replies
        self.delay_s = delay_s
        self.calls = 0
        self.requests: list[Request] = []
        self.info = {"backend": "fake", "model": "scripted", "model_sha256": None}

    def generate(self, request: Request) -> Generation:
        self.requests.append(request)
        t0 = time.perf_counter()
        if self.delay_s:
            time.sleep(self.delay_s)
        if callable(self.replies):
            text = self.replies(request, self.calls)
        else:
            text = self.replies[self.calls % len(self.replies)]
        self.calls += 1
        return Generation(text=text, tokens_in=len(request.user) // 4, tokens_out=len(text) // 4,
                          ms=(time.perf_counter() - t0) * 1e3, finish_reason="stop")

    def close(self) -> None:
        pass
