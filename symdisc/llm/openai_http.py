"""An OpenAI-compatible chat-completions endpoint (llama-server, Ollama, vLLM, ...), over urllib."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Optional

from symdisc.errors import BackendError
from symdisc.llm import Generation, Request


class OpenAIBackend:
    name = "openai"
    slots = 1  # requests at once to this one server (an EndpointPool raises it with --api-concurrency)
    cpus, remote = 0.0, True

    def __init__(self, api_base: str, model: Optional[str] = None, api_key: Optional[str] = None,
                 timeout_s: float = 300.0):
        self.url = api_base.rstrip("/") + "/chat/completions"
        self.model = model or "default"
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.info = {"backend": "openai", "model": self.model, "api_base": api_base, "model_sha256": None}

    def generate(self, request: Request) -> Generation:
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": request.system},
                         {"role": "user", "content": request.user}],
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_tokens,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.repeat_penalty != 1.0:
            body["repeat_penalty"] = request.repeat_penalty  # llama-server's name; others ignore it
        if request.grammar:
            body["grammar"] = request.grammar  # llama-server honours it; others ignore unknown fields
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                data = json.loads(resp.read().decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as exc:
            raise BackendError(f"{self.url} answered HTTP {exc.code}: {exc.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"cannot reach {self.url}: {reason}") from None
        except ValueError:
            raise BackendError(f"{self.url} did not answer JSON") from None
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise BackendError(f"{self.url} answered without choices[0].message.content") from None
        usage = data.get("usage") or {}
        return Generation(text=text, tokens_in=usage.get("prompt_tokens", 0),
                          tokens_out=usage.get("completion_tokens", 0),
                          ms=(time.perf_counter() - t0) * 1e3, finish_reason=choice.get("finish_reason"))

    def close(self) -> None:
        pass
