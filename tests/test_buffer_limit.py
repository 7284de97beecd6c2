"""The buffers class under a limit on tensors in state (``--max-buffers``): counted by the harness,
refused by the sandbox, respected by the mutation engine, the loop and the command line."""

import ast
import json
import random
import subprocess
import sys

import pytest
import torch

from symdisc import rules
from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.contract import BUFFERS, SCALAR
from symdisc.errors import ConfigError
from symdisc.judge.harness import CheckedRule
from symdisc.llm.fake import ScriptedBackend
from symdisc.search.deadcode import update_def
from symdisc.search.loop import Evolution
from symdisc.search.mutations import Mutator, tensor_slots
from symdisc.search.prompting import load_prompts
from symdisc.store import Store

TWO_BUFFERS = """def update(grad, param, state, lr, t):
    m = 0.9 * state.get('m', torch.zeros_like(param)) + 0.1 * grad
    v = 0.99 * state.get('v', torch.zeros_like(param)) + 0.01 * grad * grad
    state['m'] = m
    state['v'] = v
    return lr * m / (torch.sqrt(v) + 1e-8)
"""
ONE_BUFFER = """def update(grad, param, state, lr, t):
    m = 0.9 * state.get('m', torch.zeros_like(param)) + 0.1 * grad
    state['m'] = m
    state['n'] = state.get('n', 0) + 1
    return lr * torch.tanh(m) * (1.0 + 1.0 / state['n'])
"""


def _compiled(code: str):
    space = {"torch": torch}
    exec(code, space)  # the project's own test programs, not model output
    return space["update"]


def test_the_harness_counts_tensors_shaped_like_the_parameter():
    for code, expected in ((TWO_BUFFERS, 2), (ONE_BUFFER, 1)):
        rule = CheckedRule(_compiled(code), BUFFERS)
        param, state = torch.randn(4, 3), {}
        for t in range(1, 3):
            rule(torch.randn(4, 3), param, state, 0.01, t)
        assert rule.buffers == expected and rule.state_scalars == (1 if code is ONE_BUFFER else 0)


def test_the_sandbox_refuses_more_buffers_than_the_run_allows(sandbox):
    refused = sandbox.evaluate(TWO_BUFFERS, BUFFERS, stages=("probe",), max_buffers=1)
    assert (refused["ok"], refused["stage"], refused["reason"]) == (False, "probe", "state_rule")
    assert "kept 2 tensors" in refused["message"] and "at most 1" in refused["message"]
    allowed = sandbox.evaluate(TWO_BUFFERS, BUFFERS, stages=("probe",), max_buffers=2)
    assert allowed["ok"] and allowed["buffers"] == 2
    one = sandbox.evaluate(ONE_BUFFER, BUFFERS, stages=("probe",), max_buffers=1)
    assert one["ok"] and one["buffers"] == 1
    assert sandbox.evaluate(TWO_BUFFERS, BUFFERS, stages=("probe",))["ok"]  # no limit: the class's own rules


def test_tensor_slots_reads_the_state_keys_that_hold_tensors():
    assert tensor_slots(update_def(ast.parse(TWO_BUFFERS)), BUFFERS) == {"m", "v"}
    assert tensor_slots(update_def(ast.parse(ONE_BUFFER)), BUFFERS) == {"m"}
    assert tensor_slots(update_def(ast.parse(rules.source("robust_zero_state"))), SCALAR) == set()


def test_the_mutation_engine_keeps_within_the_limit():
    # one tensor slot, and a number (c) that a new slot holding a statistic can stand in for
    parent = ("def update(grad, param, state, lr, t):\n    m = 0.9 * state.get('m', torch.zeros_like(param)) + 0.1 * grad\n"
              "    state['m'] = m\n    c = 1.0 + 0.5 * t / (t + 10.0)\n    return lr * c * torch.sign(m)\n")
    counts = {None: 0, 1: 0}
    for limit in (None, 1):
        for seed in range(40):
            child = Mutator(BUFFERS, random.Random(seed), max_buffers=limit).child(parent, "state", lambda h: False)
            if child is None:
                continue
            slots = len(tensor_slots(update_def(ast.parse(child.code)), BUFFERS))
            counts[limit] = max(counts[limit], slots)
            if limit == 1:
                assert slots <= 1, child.code
    assert counts[None] == 2  # without the limit the engine does add a second tensor slot
    assert counts[1] == 1


def test_config_and_prompt_state_the_limit():
    with pytest.raises(ConfigError, match="buffers class"):
        EvolveConfig(memory=SCALAR, max_buffers=1).validate()
    with pytest.raises(ConfigError, match="at least 1"):
        EvolveConfig(memory=BUFFERS, max_buffers=0).validate()
    assert EvolveConfig(memory=BUFFERS, max_buffers=1).validate().max_buffers == 1
    assert "at most 1 tensor shaped like param" in load_prompts(BUFFERS, max_buffers=1).memory_rules
    assert "at most" not in load_prompts(BUFFERS).memory_rules.split("16 entries")[1]


def test_the_loop_fails_a_reply_over_the_limit_and_keeps_the_one_buffer_seed(home, gate, sandbox):
    backend = ScriptedBackend([TWO_BUFFERS, ONE_BUFFER])
    store = Store()
    config = EvolveConfig(memory=BUFFERS, max_buffers=1, candidates=2, proposer="llm", backend="fake",
                          proxy=ProxyConfig(seeds=2, steps=30), funnel=False)
    evo = Evolution.start(store, config, backend, gate, sandbox)
    evo.run()
    rows = store.candidates(evo.run_id)
    seeds = [r for r in rows if r["origin"] == "seed"]
    assert "momentum" in [r["name"] for r in seeds] and all(r["status"] == "evaluated" for r in seeds)
    replies = [(r["status"], r["reason"]) for r in rows if r["origin"] == "llm"]
    assert replies == [("failed", "state_rule"), ("evaluated", None)]
    assert store.get_run(evo.run_id)["config"]["max_buffers"] == 1


def test_a_seed_over_the_limit_stops_the_run_with_one_line(home, gate, sandbox):
    config = EvolveConfig(memory=BUFFERS, max_buffers=1, seed_rules=["adam"], candidates=1, proposer="llm", backend="fake",
                          proxy=ProxyConfig(seeds=2, steps=30), funnel=False)
    with pytest.raises(ConfigError, match="built-in seed adam failed: state_rule"):
        Evolution.start(Store(), config, ScriptedBackend([ONE_BUFFER]), gate, sandbox).run()


def test_the_command_line_refuses_a_limit_on_the_scalar_class(home):
    out = subprocess.run([sys.executable, "-m", "symdisc.cli.app", "evolve", "--max-buffers", "1", "--candidates", "1",
                          "--proposer", "llm", "--fake-replies", "/nonexistent.json"], capture_output=True, text=True)
    assert out.returncode != 0
    lines = [line for line in out.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and "--memory buffers" in lines[0]
