"""llama.cpp in-process through llama-cpp-python.

One ``Llama`` object lives for the whole run: llama-cpp-python keeps the evaluated tokens of the
previous request and re-evaluates only what differs, so the fixed system prefix (role, whiteboard,
contract) is computed once per run.
"""

from __future__ import annotations

import time
from typing import Optional

from symdisc.config import usable_cpus
from symdisc.errors import BackendError, ModelError
from symdisc.llm import Generation, Request


class LlamaCppBackend:
    name = "llamacpp"
    cpus, slots, remote = 1.0, 1, False

    def __init__(self, model_path: str, n_ctx: int = 4096, n_threads: Optional[int] = None, seed: int = 0,
                 model_name: Optional[str] = None, model_sha256: Optional[str] = None):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise ModelError("llama-cpp-python is not installed (pip install 'symdisc[llm]', or make install)") from None
        threads = n_threads or usable_cpus()
        try:
            from symdisc.llm.batched import load_llama

            self.llm = load_llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                  seed=seed, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp cannot load {model_path}: {exc}") from None
        self.n_ctx = n_ctx
        self._grammars: dict = {}
        self.info = {"backend": "llamacpp", "model": model_name or str(model_path), "model_path": str(model_path),
                     "model_sha256": model_sha256, "n_ctx": n_ctx, "n_threads": threads}

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _grammar(self, gbnf: str):
        from llama_cpp import LlamaGrammar

        if gbnf not in self._grammars:
            self._grammars[gbnf] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._grammars[gbnf]

    def generate(self, request: Request) -> Generation:
        # Chat templates add a few dozen tokens; keep a margin below the context size.
        needed = self.count_tokens(request.system) + self.count_tokens(request.user) + request.max_tokens + 64
        if needed > self.n_ctx:
            raise BackendError(f"the prompt needs about {needed} tokens, over the context of {self.n_ctx}")
        kwargs = dict(
            messages=[{"role": "system", "content": request.system}, {"role": "user", "content": request.user}],
            temperature=request.temperature, top_p=request.top_p, max_tokens=request.max_tokens,
            repeat_penalty=request.repeat_penalty,
        )
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.grammar:
            kwargs["grammar"] = self._grammar(request.grammar)
        t0 = time.perf_counter()
        try:
            out = self.llm.create_chat_completion(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise BackendError(f"llama.cpp failed: {exc}") from None
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Generation(text=choice["message"]["content"] or "", tokens_in=usage.get("prompt_tokens", 0),
                          tokens_out=usage.get("completion_tokens", 0), ms=(time.perf_counter() - t0) * 1e3,
                          finish_reason=choice.get("finish_reason"))

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            try:
                llm.close()
            except Exception:
                pass
            self.llm = None
