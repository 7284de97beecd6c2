"""Several replies per forward pass: batched llama.cpp decoding in one context, in-process.

``BatchedLlamaBackend`` decodes up to ``slots`` requests together through llama-cpp-python's
low-level API: one ``llama_decode`` per step carries one token of every sequence that is generating
plus a chunk of the prompts still being read. Each sequence has its own sampler chain (grammar,
temperature, top-p, seed), built exactly as ``Llama.create_chat_completion`` builds it, and its prompt
is rendered by llama-cpp-python's own chat handler, so with the same request it returns what
``LlamaCppBackend`` returns (greedy decoding: the same replies up to the rounding of llama.cpp's
kernels, which depends on each micro-batch's shape; the end-to-end test checks it).

Prompt reuse: sequence 0 is reserved for the run's fixed system prefix, evaluated once; a new
request starts from the longest common token prefix with anything already in the cache (the
reserved sequence, a finished reply's prompt, another request's prompt) by ``llama_memory_seq_cp``
(free in a unified cache: the cells are shared), and evaluates only the rest. A request whose
prefix is being read right now for another one waits a step for it instead of reading it twice.
Continuous batching: a finished sequence's slot takes the next request at once.

Two ways in: ``submit`` / ``wait`` for a caller that keeps N requests in flight (the loop), and a
thread-safe ``generate`` for callers with one request per thread (a Ray actor with concurrency).
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Optional

from symdisc.config import usable_cpus
from symdisc.errors import BackendError, ModelError
from symdisc.llm import Generation, Request

WAIT_FOR_DONOR = 16  # tokens: wait a step for a prefix being read rather than read it again


def load_llama(**kwargs):
    """``llama_cpp.Llama(**kwargs)``, without llama.cpp's extra weight buffers where they crash.

    The llama-cpp-python wheel built on these machines enables AMX (the CPU reports it), but the
    virtual machine traps AMX instructions (SIGILL in ``tilezero`` on the first prompt). llama.cpp
    only uses AMX through its "extra buffer types" (weight repacking), so on a CPU that reports
    ``amx_tile`` they are turned off, unless ``SYMDISC_LLAMA_EXTRA_BUFTS=1``. Both llama.cpp
    backends load through here, so their numerics match.
    """
    import llama_cpp
    import llama_cpp.llama as high

    if not _extra_bufts_allowed():
        original = high.llama_cpp.llama_model_default_params

        def params():
            p = original()
            p.use_extra_bufts = False
            return p

        high.llama_cpp.llama_model_default_params = params
        try:
            return llama_cpp.Llama(**kwargs)
        finally:
            high.llama_cpp.llama_model_default_params = original
    return llama_cpp.Llama(**kwargs)


def _extra_bufts_allowed() -> bool:
    flag = os.environ.get("SYMDISC_LLAMA_EXTRA_BUFTS")
    if flag is not None:
        return flag not in ("0", "", "no", "false")
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_tile" not in line.split()
    except OSError:
        pass
    return True


class _Captured(Exception):
    def __init__(self, kwargs: dict):
        self.kwargs = kwargs


class _PromptCapture:
    """Stands in for ``Llama`` inside llama-cpp-python's chat handler, to learn the exact prompt
    tokens and stop strings the one-at-a-time path would use, without generating anything."""

    def __init__(self, llm):
        self._llm = llm

    def __getattr__(self, name):
        return getattr(self._llm, name)

    def create_completion(self, **kwargs):
        raise _Captured(kwargs)


@dataclass
class _Job:
    ticket: int
    request: Request
    prompt: list  # prompt tokens
    stop: list  # stop strings, as bytes
    sampler: object = None  # llama_cpp._internals.LlamaSampler
    out: list = field(default_factory=list)  # completion tokens
    t0: float = 0.0
    reused: int = 0  # prompt tokens copied from the cache instead of evaluated
    multibyte_fix: int = 0


@dataclass
class _Slot:
    seq: int
    kv: list = field(default_factory=list)  # tokens of this sequence in the cache (decoded)
    job: Optional[_Job] = None
    feed: list = field(default_factory=list)  # tokens to decode next (prompt rest, or the last sample)
    started: bool = False


class BatchedLlamaBackend:
    name = "llamacpp"
    cpus, remote = 1.0, False

    def __init__(self, model_path: str, slots: int = 4, n_ctx: int = 4096, n_threads: Optional[int] = None,
                 seed: int = 0, model_name: Optional[str] = None, model_sha256: Optional[str] = None,
                 n_batch: int = 512, share_prefixes: bool = True, trace: Optional[Callable] = None):
        try:
            import llama_cpp
        except ImportError:
            raise ModelError("llama-cpp-python is not installed (pip install 'symdisc[llm]', or make install)") from None
        self._lc = llama_cpp
        threads = n_threads or usable_cpus()
        self.slots_n = max(1, int(slots))
        self.slots = self.slots_n
        self.n_ctx = n_ctx  # per request, as LlamaCppBackend checks it
        self.share_prefixes = share_prefixes
        # One stream of n_ctx cells per sequence (kv_unified off): each sequence's cells lie exactly
        # as they would in a context of its own, so attention adds up its terms in the same order
        # as the one-at-a-time path (a unified cache interleaves sequences and changes the rounding).
        total = n_ctx * (self.slots_n + 1)
        try:
            # The Llama object gives the tokenizer, chat handler and sampler recipe; its own small
            # context is not used for generation.
            self.llm = load_llama(model_path=str(model_path), n_ctx=256, n_batch=256, n_threads=threads,
                                  n_threads_batch=threads, seed=seed, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp cannot load {model_path}: {exc}") from None
        params = type(self.llm.context_params).from_buffer_copy(self.llm.context_params)
        params.n_ctx = total
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = self.slots_n + 1
        params.kv_unified = False
        params.n_threads = threads
        params.n_threads_batch = threads
        self.ctx = llama_cpp.llama_init_from_model(self.llm._model.model, params)
        if not self.ctx:
            self.llm.close()
            raise ModelError(f"llama.cpp cannot make a context of {total} tokens for {self.slots_n} sequences")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.vocab = self.llm._model.vocab
        self.n_batch = n_batch
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self.total_ctx = total
        self._reserved = _Slot(0)  # the fixed system prefix
        self._system_prefix: dict = {}  # system text -> its prefix tokens
        self._slots = [_Slot(i + 1) for i in range(self.slots_n)]
        self._queue: deque = deque()
        self._done: list = []
        self._tickets = 0
        self._grammars: dict = {}
        self._lock = threading.Lock()  # one thread decodes; ``generate`` callers take turns driving
        self._results: dict = {}  # finished by ``generate``'s callers, by ticket
        self.trace = trace  # called as trace(request, token, logits) for every sampled token
        self.stats = {"prompt_tokens": 0, "reused_tokens": 0, "decodes": 0}
        self.info = {"backend": "llamacpp", "model": model_name or str(model_path), "model_path": str(model_path),
                     "model_sha256": model_sha256, "n_ctx": n_ctx, "n_threads": threads, "parallel": self.slots_n}

    # -- prompts -------------------------------------------------------------------------------
    def _handler(self):
        from llama_cpp import llama_chat_format

        llm = self.llm
        return (llm.chat_handler or llm._chat_handlers.get(llm.chat_format)
                or llama_chat_format.get_chat_completion_handler(llm.chat_format))

    def _render(self, system: str, user: str) -> tuple[list, list]:
        """Prompt tokens and stop strings, as ``create_chat_completion`` would make them."""
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        try:
            self._handler()(llama=_PromptCapture(self.llm), messages=messages)
        except _Captured as got:
            kwargs = got.kwargs
        else:
            raise BackendError("llama-cpp-python's chat handler did not ask for a completion")
        prompt = kwargs.get("prompt")
        llm = self.llm
        if isinstance(prompt, str):  # as Llama._create_completion tokenizes a text prompt
            bos = [llm._model.token_cls() if llm._model.token_cls() != -1 else llm.token_bos()]
            if not llm._model.add_bos_token() or bos[:1] == [-1]:
                bos = []
            sep = llm._model.token_sep()
            eos = [sep if sep != -1 else llm.token_eos()]
            if not llm._model.add_eos_token() and sep == -1:
                eos = []
            body = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) if prompt else []
            prompt = bos + body + eos
        stop = kwargs.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        return list(prompt), [s.encode("utf-8") for s in stop if s]

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _prefix_of(self, system: str) -> list:
        if system not in self._system_prefix:
            a, _ = self._render(system, "a")
            b, _ = self._render(system, "b")
            self._system_prefix = {system: a[:_common(a, b)]}
        return self._system_prefix[system]

    def _sampler(self, request: Request):
        """The sampler chain of ``Llama.generate`` for this request (penalties, grammar, top-k 40,
        typical 1, top-p, min-p 0.05, temperature, dist with the request's seed)."""
        from llama_cpp import LlamaGrammar

        grammar = None
        if request.grammar:
            if request.grammar not in self._grammars:
                self._grammars[request.grammar] = LlamaGrammar.from_string(request.grammar, verbose=False)
            grammar = self._grammars[request.grammar]
        llm = self.llm
        llm.set_seed(request.seed if request.seed is not None else __import__("random").Random(llm._seed).randint(0, 2**32))
        return llm._init_sampler(top_k=40, top_p=request.top_p, min_p=0.05, typical_p=1.0, temp=request.temperature,
                                 repeat_penalty=request.repeat_penalty, grammar=grammar)

    # -- the queue -----------------------------------------------------------------------------
    def submit(self, request: Request) -> int:
        """Queue a request; returns its ticket (``wait`` hands back (ticket, Generation) pairs)."""
        needed = self.count_tokens(request.system) + self.count_tokens(request.user) + request.max_tokens + 64
        if needed > self.n_ctx:
            raise BackendError(f"the prompt needs about {needed} tokens, over the context of {self.n_ctx}")
        prompt, stop = self._render(request.system, request.user)
        self._tickets += 1
        job = _Job(self._tickets, request, prompt, stop)
        if self.share_prefixes:
            self._reserve(self._prefix_of(request.system))
        self._queue.append(job)
        return job.ticket

    def pending(self) -> int:
        return len(self._queue) + sum(1 for s in self._slots if s.job is not None)

    def wait(self) -> list:
        """Decode until at least one request is done; returns every finished (ticket, Generation)."""
        while not self._done:
            if not self.pending():
                return []
            self._step()
        done, self._done = self._done, []
        return done

    def generate_many(self, requests: list) -> list:
        tickets = [self.submit(r) for r in requests]
        got: dict = {}
        while len(got) < len(tickets):
            got.update(self.wait())
        return [got[t] for t in tickets]

    def generate(self, request: Request) -> Generation:
        """Thread-safe: callers in several threads (a Ray actor with ``max_concurrency``) share the
        batch. Each holds the lock for one step at a time, so a request that arrives joins the
        batch at the next step, and whoever holds the lock decodes for everyone."""
        with self._lock:
            ticket = self.submit(request)
        while True:
            with self._lock:
                if ticket not in self._results:
                    self._step()
                    self._results.update(self._done)
                    self._done = []
                if ticket in self._results:
                    return self._results.pop(ticket)

    # -- the cache -----------------------------------------------------------------------------
    def _reserve(self, prefix: list) -> None:
        """Evaluate the system prefix into the reserved sequence (once per run)."""
        slot = self._reserved
        if slot.kv == prefix or not prefix:
            return
        keep = _common(slot.kv, prefix)
        self._lc.llama_memory_seq_rm(self.mem, 0, keep, -1)
        slot.kv = slot.kv[:keep]
        rest = prefix[keep:]
        for i in range(0, len(rest), self.n_batch):
            chunk = rest[i:i + self.n_batch]
            self._fill([(0, len(slot.kv) + j, tok, False) for j, tok in enumerate(chunk)])
            self._decode()
            slot.kv.extend(chunk)

    def _start(self, slot: _Slot, job: _Job, others: list) -> bool:
        """Point ``slot`` at ``job``: copy the longest cached prefix, queue the rest of the prompt.
        False when a longer prefix is being read for another request right now (start next step)."""
        prompt = job.prompt
        best, donor = 0, None
        if self.share_prefixes:
            for cand in [self._reserved, *self._slots]:
                n = _common(cand.kv, prompt)
                if n > best or (n == best and cand is slot):
                    best, donor = n, cand
            reading = max((_common(o.job.prompt, prompt) for o in others if o.job is not None and o.feed
                           and o.started and len(o.kv) < len(o.job.prompt)), default=0)
            if reading > best + WAIT_FOR_DONOR:
                return False
        best = min(best, len(prompt) - 1)  # evaluate at least one token, for its logits
        lc = self._lc
        if donor is slot:
            lc.llama_memory_seq_rm(self.mem, slot.seq, best, -1)
        else:
            lc.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
            if best > 0:
                # Across streams llama.cpp copies a whole sequence (the buffer copy happens at the next
                # decode); the cells past the shared prefix are then dropped.
                lc.llama_memory_seq_cp(self.mem, donor.seq, slot.seq, -1, -1)
                lc.llama_memory_seq_rm(self.mem, slot.seq, best, -1)
        slot.kv = prompt[:best]
        slot.feed = prompt[best:]
        slot.job, slot.started = job, True
        job.reused, job.t0 = best, time.perf_counter()
        job.sampler = self._sampler(job.request)
        self.stats["prompt_tokens"] += len(prompt)
        self.stats["reused_tokens"] += best
        return True

    # -- one step ------------------------------------------------------------------------------
    def _step(self) -> None:
        busy = [s for s in self._slots if s.job is not None]
        for slot in self._slots:
            if slot.job is None and self._queue:
                if self._start(slot, self._queue[0], busy):
                    self._queue.popleft()
                    busy.append(slot)
                else:
                    break
        # Generating sequences first (one token each), then prompt chunks in the room left.
        entries, owners = [], []
        room = self.n_batch
        for slot in sorted(busy, key=lambda s: len(s.feed) > 1 or len(s.kv) < len(s.job.prompt)):
            if room <= 0:
                break
            take = slot.feed[:room]
            whole = len(take) == len(slot.feed)
            for j, tok in enumerate(take):
                last = whole and j == len(take) - 1
                entries.append((slot.seq, len(slot.kv) + j, tok, last))
                if last:
                    owners.append((slot, len(entries) - 1))
            slot.kv.extend(take)
            slot.feed = slot.feed[len(take):]
            room -= len(take)
        if not entries:
            return
        self._fill(entries)
        self._decode()
        for slot, index in owners:
            self._sample(slot, index)

    def _fill(self, entries: list) -> None:
        b = self.batch
        for i, (seq, pos, tok, logits) in enumerate(entries):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = bool(logits)
        b.n_tokens = len(entries)

    def _decode(self) -> None:
        rc = self._lc.llama_decode(self.ctx, self.batch)
        self.stats["decodes"] += 1
        if rc == 1:
            # No room in the cache: drop what idle slots keep and try once more.
            for slot in self._slots:
                if slot.job is None and slot.kv:
                    self._lc.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                    slot.kv = []
            rc = self._lc.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise BackendError(f"llama_decode failed ({rc}): the cache of {self.total_ctx} tokens is full "
                               f"or the batch is malformed")

    def _sample(self, slot: _Slot, index: int) -> None:
        """Sample the next token of ``slot`` and apply ``_create_completion``'s stop rules."""
        job = slot.job
        token = self._lc.llama_sampler_sample(job.sampler.sampler, self.ctx, index)
        if self.trace is not None:
            self.trace(job.request, token, self._logits(index))
        llm = self.llm
        if self._lc.llama_vocab_is_eog(self.vocab, token):
            return self._finish(slot, llm.detokenize(job.out, prev_tokens=job.prompt), "stop")
        job.out.append(token)
        text = llm.detokenize(job.out, prev_tokens=job.prompt)
        for k, char in enumerate(text[-3:]):
            k = 3 - k
            for num, pattern in [(2, 192), (3, 224), (4, 240)]:
                if num > k and pattern & char == pattern:
                    job.multibyte_fix = num - k
        if job.multibyte_fix > 0:
            job.multibyte_fix -= 1
        else:
            stops = [s for s in job.stop if s in text]
            if stops:
                return self._finish(slot, text[:text.index(stops[0])], "stop")
            if len(job.out) >= job.request.max_tokens:
                return self._finish(slot, text, "length")
        slot.feed = [token]

    def _logits(self, index: int):
        """A copy of the logits the sampler read for batch entry ``index`` (for ``trace``)."""
        import numpy as np

        n = self._lc.llama_vocab_n_tokens(self.vocab)
        return np.ctypeslib.as_array(self._lc.llama_get_logits_ith(self.ctx, index), shape=(n,)).copy()

    def _finish(self, slot: _Slot, text: bytes, reason: str) -> None:
        job = slot.job
        job.sampler.close() if hasattr(job.sampler, "close") else None
        slot.job, slot.feed, slot.started = None, [], False
        gen = Generation(text=text.decode("utf-8", errors="ignore"), tokens_in=len(job.prompt),
                         tokens_out=len(job.out), ms=(time.perf_counter() - job.t0) * 1e3, finish_reason=reason)
        self._done.append((job.ticket, gen))

    def close(self) -> None:
        if getattr(self, "ctx", None):
            self._lc.llama_batch_free(self.batch)
            self._lc.llama_free(self.ctx)
            self.ctx = None
        llm = getattr(self, "llm", None)
        if llm is not None:
            try:
                llm.close()
            except Exception:
                pass
            self.llm = None


def _common(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
