"""End to end with the real llama.cpp backend and catalog models (installed by `make test`).

These run in CI. Set SYMDISC_SKIP_LLM=1 to skip them on a machine without llama-cpp-python.
"""

import json
import os
import subprocess
import sys

import pytest

from symdisc.llm.catalog import CATALOG, installed_path

pytestmark = pytest.mark.llm

if os.environ.get("SYMDISC_SKIP_LLM"):
    pytest.skip("SYMDISC_SKIP_LLM is set", allow_module_level=True)


def _require(name):
    path = installed_path(CATALOG[name])
    assert path is not None, f"{name} is not installed: run `symdisc models pull {name}` (make test does)"
    return path


def test_grammar_forces_the_update_skeleton():
    from symdisc.llm import Request
    from symdisc.llm.llamacpp import LlamaCppBackend
    from symdisc.search.prompting import UPDATE_GRAMMAR, load_prompts

    path = _require("smollm2-135m")
    backend = LlamaCppBackend(str(path), n_ctx=2048, n_threads=2, seed=0)
    try:
        texts = load_prompts("scalar")
        request = Request(system=texts.system_message(), user="Write a robust update rule.", max_tokens=96,
                          temperature=0.7, seed=1, grammar=UPDATE_GRAMMAR)
        first = backend.generate(request)
        request.seed = 2
        second = backend.generate(request)  # same system prefix: llama.cpp reuses its evaluation
    finally:
        backend.close()
    assert first.text.startswith("def update(grad, param, state, lr, t):\n")
    assert "```" not in first.text and "#" not in first.text
    assert first.tokens_out > 0 and first.tokens_in > 100
    assert second.text.startswith("def update(grad, param, state, lr, t):\n")


def test_evolve_end_to_end_with_the_embedded_model(tmp_path):
    path = _require("qwen2.5-coder-0.5b")
    env = dict(os.environ, SYMDISC_HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "symdisc.cli.app", "evolve", "--proposer", "llm", "--model", "qwen2.5-coder-0.5b", "--candidates", "2",
         "--max-tokens", "96", "--seed", "3", "--json"],
        env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["candidates"] == 2
    from symdisc.store import Store

    with Store(tmp_path / "symdisc.db") as store:
        run = store.get_run(summary["id"])
        assert run["status"] == "finished"
        assert run["backend"] == "llamacpp" and run["model"] == "qwen2.5-coder-0.5b"
        assert run["model_sha256"] == CATALOG["qwen2.5-coder-0.5b"].sha256
        assert run["versions"]["llama-cpp-python"]
        proposed = [c for c in store.candidates(run["id"]) if c["origin"] == "llm"]
        assert len(proposed) == 2
        for c in proposed:
            assert c["response"].startswith("def update(")  # grammar on by default below 2B
            assert c["status"] in ("evaluated", "rejected", "failed", "duplicate")
            assert c["tokens_out"] > 0
    assert path.stat().st_size > 100_000_000  # the real 0.5B model ran, not a stand-in


# Two numerics paths give the same context slightly different logits: llama.cpp picks its matrix
# kernels by the shape of each micro-batch, so a token evaluated alone (a prompt's last token after a
# cached prefix, or one token of a new sequence beside another sequence's next token) rounds
# differently from the same token inside a prompt chunk. Measured with smollm2-135m Q4_1 on an AMD
# EPYC with AVX-512: the same 775-token context, its last token decoded alone or in the chunk, moved
# the logits by up to 0.61; across batched schedules, by up to 0.95, flipping greedy choices only
# at near-ties (0.005 logits apart). A reply served from the wrong context (another request's
# prompt) moved them by 5.7 to 7.2.
NEAR_TIE = 2.0  # logits: the most the two best tokens may differ for rounding to flip them
DRIFT = 3.0  # logits: the largest move of the same context's logits that rounding explains

USERS = ["Write a robust update rule.", "Write an update rule that uses the sign of the gradient.",
         "Propose a new optimizer update.", "Write a robust update rule with momentum."]


def _requests(system):
    from symdisc.llm import Request
    from symdisc.search.prompting import UPDATE_GRAMMAR

    return [Request(system=system, user=u, max_tokens=24 + 8 * i, temperature=0.0, seed=i, grammar=UPDATE_GRAMMAR,
                    repeat_penalty=1.0) for i, u in enumerate(USERS)]


def _reference(path, prompt, request):
    """The one-at-a-time path (llama-cpp-python's own ``generate``, as ``create_chat_completion``
    runs it) in a fresh context: [(token, logits it was chosen from)]."""
    import llama_cpp
    import numpy as np
    from llama_cpp import LlamaGrammar

    from symdisc.llm.batched import load_llama

    llm = load_llama(model_path=str(path), n_ctx=2048, n_threads=2, n_threads_batch=2, seed=0, verbose=False)
    try:
        n_vocab = llama_cpp.llama_vocab_n_tokens(llm._model.vocab)
        out = []
        for token in llm.generate(prompt, temp=0.0, top_k=40, top_p=request.top_p, min_p=0.05, repeat_penalty=1.0,
                                  grammar=LlamaGrammar.from_string(request.grammar, verbose=False)):
            logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            out.append((token, logits.copy()))
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token) or len(out) >= request.max_tokens:
                break
        return out
    finally:
        llm.close()


def _disagreement(reference, got):
    """None when ``got`` is the reference reply up to rounding, else what differs."""
    import numpy as np

    for k, ((want, ref_logits), (token, logits)) in enumerate(zip(reference, got)):
        drift = float(np.abs(logits - ref_logits).max())
        if drift > DRIFT:
            return f"token {k}: the logits moved by {drift:.3f} (the context differs, not its rounding)"
        if token != want:
            gap = float(ref_logits[want] - ref_logits[token])
            return None if gap <= NEAR_TIE else f"token {k}: chose {token} over {want}, {gap:.3f} logits behind"
    if len(got) != len(reference):
        return f"{len(got)} tokens against the reference's {len(reference)}"
    return None


class _Traced:
    """Every sampled token of a batched backend, by request, with the logits it was chosen from."""

    def __init__(self):
        self.by_request = {}

    def __call__(self, request, token, logits):
        self.by_request.setdefault(id(request), []).append((token, logits))


@pytest.fixture(scope="module")
def greedy_reference():
    from symdisc.llm.batched import BatchedLlamaBackend
    from symdisc.search.prompting import load_prompts

    path = _require("smollm2-135m")
    requests = _requests(load_prompts("scalar").system_message())
    probe = BatchedLlamaBackend(str(path), slots=1, n_ctx=2048, n_threads=2, seed=0)
    try:
        prompts = [probe._render(r.system, r.user)[0] for r in requests]
    finally:
        probe.close()
    return path, requests, prompts, [_reference(path, p, r) for p, r in zip(prompts, requests)]


def _batched(path, trace, cls=None):
    from symdisc.llm.batched import BatchedLlamaBackend

    return (cls or BatchedLlamaBackend)(str(path), slots=2, n_ctx=2048, n_threads=2, seed=0, trace=trace)


def test_batched_greedy_agrees_with_one_at_a_time(greedy_reference):
    """Two sequences per decode, slots refilled as replies finish, prompt prefixes copied from the
    cache, requests joining while others generate (the loop's continuous batching and the
    thread-safe path a Ray proposer actor uses): every reply is the one-at-a-time path's, up to
    rounding (same logits within DRIFT; a different token only at a near-tie)."""
    from concurrent.futures import ThreadPoolExecutor

    path, requests, prompts, reference = greedy_reference
    trace = _Traced()
    backend = _batched(path, trace)
    try:
        got = backend.generate_many(requests)
        reused = backend.stats["reused_tokens"]
        sampled = [trace.by_request.pop(id(r)) for r in requests]
        problems = [(f"generate_many {i}", _disagreement(reference[i], s)) for i, s in enumerate(sampled)]
        # A request that joins while another is generating, after 0, 1 and 3 decodes.
        for delay in (0, 1, 3):
            first = backend.submit(requests[0])
            for _ in range(delay):
                backend._step()
            second = backend.submit(requests[1])
            done = {}
            while len(done) < 2:
                done.update(backend.wait())
            assert set(done) == {first, second}
            for i in (0, 1):
                problems.append((f"joined after {delay} decodes, {i}",
                                 _disagreement(reference[i], trace.by_request.pop(id(requests[i])))))
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(backend.generate, requests[:2]))
        for i in (0, 1):
            problems.append((f"threads {i}", _disagreement(reference[i], trace.by_request.pop(id(requests[i])))))
    finally:
        backend.close()
    assert [p for p in problems if p[1]] == []
    for g, s in zip(got, sampled):  # the end-of-generation token is sampled but not part of the reply
        assert g.tokens_out == len(s) - (g.finish_reason == "stop") and g.tokens_out > 0
    assert [g.tokens_in for g in got] == [len(p) for p in prompts]
    assert reused > 3 * got[0].tokens_in // 2  # the system prefix was evaluated once, not four times


def test_the_agreement_check_catches_a_context_mix_up(greedy_reference):
    """The check above is not one that can only pass: a backend that serves each request from
    another request's prompt (a prefix copied from the wrong sequence, at its worst) fails it."""
    from symdisc.llm.batched import BatchedLlamaBackend

    class WrongContext(BatchedLlamaBackend):
        def _render(self, system, user):
            if user in USERS:
                user = USERS[(USERS.index(user) + 1) % len(USERS)]
            return super()._render(system, user)

    path, requests, prompts, reference = greedy_reference
    trace = _Traced()
    backend = _batched(path, trace, WrongContext)
    try:
        backend.generate_many(requests)
    finally:
        backend.close()
    found = [_disagreement(reference[i], trace.by_request[id(r)]) for i, r in enumerate(requests)]
    assert all(f and "logits moved" in f for f in found), found


def test_same_schedule_same_replies(greedy_reference):
    """Where the batch composition is the same, so are the replies, token for token and bit for bit
    in the logits: two fresh backends given the same requests in the same order."""
    import numpy as np

    path, requests, prompts, reference = greedy_reference
    runs = []
    for _ in range(2):
        trace = _Traced()
        backend = _batched(path, trace)
        try:
            texts = [g.text for g in backend.generate_many(requests)]
        finally:
            backend.close()
        runs.append((texts, [trace.by_request[id(r)] for r in requests]))
    (texts_a, traced_a), (texts_b, traced_b) = runs
    assert texts_a == texts_b and all(t.startswith("def update(") for t in texts_a)
    for a, b in zip(traced_a, traced_b):
        assert [t for t, _ in a] == [t for t, _ in b]
        assert all(np.array_equal(la, lb) for (_, la), (_, lb) in zip(a, b))
