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
        [sys.executable, "-m", "symdisc.cli.app", "evolve", "--model", "qwen2.5-coder-0.5b", "--candidates", "2",
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
