"""The discovery loop with a scripted model: verdicts, amnesia, deduplication, junk, resume, replay."""

import json
import os
import subprocess
import sys

import pytest

from symdisc.llm.fake import ScriptedBackend
from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.search.loop import Evolution
from tests.killing import evolve_then_kill
from symdisc.store import Store

GOOD_NORM = """```python
def update(grad, param, state, lr, t):
    n = grad.norm().item()
    state['n'] = 0.9 * state.get('n', n) + 0.1 * n
    return lr * grad / (state['n'] + 1e-8)
```"""
GOOD_TANH = "Here is my idea:\n```python\ndef update(grad, param, state, lr, t):\n    return lr * torch.tanh(grad)\n```\nIt squashes outliers."
SGD_RENAMED = "def update(grad, param, state, lr, t):\n    step = lr * grad\n    return step\n"
IMPORT_OS = "```python\nimport os\ndef update(grad, param, state, lr, t):\n    return lr * grad\n```"
IGNORES_LR = "def update(grad, param, state, lr, t):\n    return torch.sign(grad) * 0.01\n"
NAN = "def update(grad, param, state, lr, t):\n    return lr * grad / (grad - grad)\n"
TENSOR_STATE = "def update(grad, param, state, lr, t):\n    state['g'] = grad\n    return lr * grad\n"

FAST_PROXY = ProxyConfig(seeds=2, steps=30)


def _config(**kw):
    kw.setdefault("proxy", FAST_PROXY)
    kw.setdefault("backend", "fake")
    kw.setdefault("proposer", "llm")
    return EvolveConfig(**kw)


def test_loop_records_every_verdict(home, gate, sandbox):
    replies = [GOOD_TANH, "no code here, sorry", IMPORT_OS, GOOD_NORM, SGD_RENAMED, IGNORES_LR, NAN, TENSOR_STATE]
    backend = ScriptedBackend(replies)
    store = Store()
    evo = Evolution.start(store, _config(candidates=len(replies)), backend, gate, sandbox)
    summary = evo.run()

    rows = store.candidates(evo.run_id)
    seeds = [r for r in rows if r["origin"] == "seed"]
    proposed = [r for r in rows if r["origin"] == "llm"]
    assert [r["name"] for r in seeds] == ["sgd", "sign_sgd", "robust_zero_state"]
    assert all(r["status"] == "evaluated" for r in seeds)
    outcome = [(r["status"], r["reason"]) for r in proposed]
    assert outcome == [
        ("evaluated", None),
        ("rejected", "no_code"),
        ("rejected", "import"),
        ("evaluated", None),
        ("duplicate", "repeat"),  # the same AST as the seeded SGD, up to names
        ("failed", "ignores_lr"),
        ("failed", "bad_output"),
        ("rejected", "stateful"),
    ]
    assert summary["candidates"] == len(replies)
    assert summary["passed_gate"] == 5
    assert store.get_run(evo.run_id)["status"] == "finished"
    # every evaluated candidate has its fitness and per-seed proxy evaluations
    for row in store.candidates(evo.run_id, ["evaluated"]):
        assert 0.0 <= row["fitness"] <= 1.0
        evals = store.evaluations(row["id"])
        assert {e["stage"] for e in evals} == {"probe", "proxy"}
        assert len([e for e in evals if e["stage"] == "proxy" and e["seed"] is not None]) == FAST_PROXY.seeds
    # the raw reply is kept as it came, the extracted code beside it
    tanh = proposed[0]
    assert tanh["response"] == GOOD_TANH and tanh["code"].startswith("def update")


def test_prompt_shows_best_programs_ascending_and_only_three_errors(home, gate, sandbox):
    replies = ["junk one", IMPORT_OS, TENSOR_STATE, "junk four", GOOD_TANH]
    backend = ScriptedBackend(replies)
    store = Store()
    # the prompt of the loop before operators (llm-legacy); the operator prompts: tests/test_operators.py
    evo = Evolution.start(store, _config(candidates=len(replies), proposer="llm-legacy"), backend, gate, sandbox)
    evo.run()
    last = backend.requests[-1]
    # controlled amnesia: the oldest error ("junk one" -> no_code) is no longer shown
    errors = last.user.split("YOUR LAST ERRORS")[1]
    assert errors.count("- gate rejected") == 3
    assert "[import, line 1]" in errors and "[stateful" in errors
    scores = [float(line.split()[2]) for line in last.user.splitlines() if line.startswith("# score")]
    assert scores == sorted(scores) and len(scores) == 3
    # the system prompt is the same for every request: an unchanging prefix for the prompt cache
    assert len({r.system for r in backend.requests}) == 1
    assert "LAB WHITEBOARD" in last.system and "scalar, O(1)" in last.system


JUNK = [
    "", "   \n\n", "\x00\x01binary\x00", "```python\n", "```python\ndef update(grad, param, state, lr, t):\n    return (",
    "def update(grad, param, state, lr, t):\n\treturn lr * grad\n        ",
    "é" * 5000, "def update(" + "(" * 5000, "x" * 300_000, "```\n```\n```", "def update(grad):\n    return grad\n",
    "def update(grad, param, state, lr, t):\n    return lr * grad\ndef update(grad, param, state, lr, t):\n    return grad\n",
]


def test_junk_never_crashes_the_loop(home, gate, sandbox):
    store = Store()
    evo = Evolution.start(store, _config(candidates=len(JUNK)), ScriptedBackend(JUNK), gate, sandbox)
    summary = evo.run()
    proposed = [r for r in store.candidates(evo.run_id) if r["origin"] == "llm"]
    assert len(proposed) == len(JUNK)
    assert all(r["status"] in ("rejected", "failed", "duplicate") for r in proposed)
    assert all(r["reason"] for r in proposed)
    assert summary["candidates"] == len(JUNK)


def test_minutes_budget_stops_the_run(home, gate, sandbox):
    store = Store()
    evo = Evolution.start(store, _config(candidates=None, minutes=0.02), ScriptedBackend([GOOD_TANH], delay_s=0.2),
                          gate, sandbox)
    summary = evo.run()
    assert 1 <= summary["candidates"] < 20


def test_replay_rescores_a_logged_run(home, gate, sandbox):
    from symdisc.llm.replay import ReplayBackend

    store = Store()
    first = Evolution.start(store, _config(candidates=3), ScriptedBackend([GOOD_TANH, IMPORT_OS, GOOD_NORM]), gate, sandbox)
    first.run()
    replay = ReplayBackend(store, first.run_id)
    second = Evolution.start(store, _config(candidates=len(replay), backend="replay"), replay, gate, sandbox)
    second.run()
    a = [(r["response"], r["status"], r["fitness"]) for r in store.candidates(first.run_id) if r["origin"] == "llm"]
    b = [(r["response"], r["status"], r["fitness"]) for r in store.candidates(second.run_id) if r["origin"] == "llm"]
    assert a == b


def _cli(*args, env, timeout=120):
    return subprocess.run([sys.executable, "-m", "symdisc.cli.app", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_resume_after_sigkill_loses_nothing(tmp_path):
    home = tmp_path / "home"
    replies = tmp_path / "replies.json"
    variants = [f"def update(grad, param, state, lr, t):\n    return lr * torch.tanh({k} * grad)\n" for k in range(2, 40)]
    replies.write_text(json.dumps(variants))
    env = dict(os.environ, SYMDISC_HOME=str(home))
    db = evolve_then_kill(home, ["--proposer", "llm", "--fake-replies", str(replies), "--fake-delay", "0.3", "-n", "10"], env)

    with Store(db) as store:
        run = store.list_runs()[0]
        assert run["status"] == "running"  # killed: nobody marked it
        before = store.candidates(run["id"])
    result = _cli("evolve", "--resume", run["id"], "--fake-replies", str(replies), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == run["id"]
    with Store(db) as store:
        after = store.candidates(run["id"])
        assert store.get_run(run["id"])["status"] == "finished"
    proposed = [r for r in after if r["origin"] == "llm"]
    assert len(proposed) == 10
    assert len({r["seq"] for r in after}) == len(after)
    assert all(r["status"] != "pending" for r in after)
    assert len([r for r in after if r["origin"] == "seed"]) == 3  # resume does not re-add the seeds
    # every reply stored before the kill is still there, judged
    for old in before:
        new = next(r for r in after if r["id"] == old["id"])
        assert new["response"] == old["response"]


def test_interrupt_marks_run_and_keeps_rows(home, gate, sandbox):
    class Interrupting(ScriptedBackend):
        def generate(self, request):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().generate(request)

    store = Store()
    evo = Evolution.start(store, _config(candidates=5), Interrupting([GOOD_TANH, GOOD_NORM]), gate, sandbox)
    with pytest.raises(KeyboardInterrupt):
        evo.run()
    assert store.get_run(evo.run_id)["status"] == "interrupted"
    assert len([r for r in store.candidates(evo.run_id) if r["origin"] == "llm"]) == 2


def test_seeds_pick_the_starting_population(home, gate, sandbox):
    store = Store()
    evo = Evolution.start(store, _config(candidates=1, seed_rules=["sgd"]).validate(), ScriptedBackend([GOOD_TANH]),
                          gate, sandbox)
    evo.run()
    seeds = [r["name"] for r in store.candidates(evo.run_id) if r["origin"] == "seed"]
    assert seeds == ["sgd"]
    assert store.get_run(evo.run_id)["config"]["seed_rules"] == ["sgd"]  # stored with the run


def test_seeds_default_and_validation():
    from symdisc.config import check_seed_rules, parse_seed_rules
    from symdisc.errors import ConfigError

    assert _config(candidates=1).validate().seed_rules == ["sgd", "sign_sgd", "robust_zero_state"]
    assert _config(candidates=1, memory="buffers").validate().seed_rules[-1] == "momentum"
    assert check_seed_rules(parse_seed_rules("sign-sgd, sgd,sgd"), "scalar") == ["sign_sgd", "sgd"]
    with pytest.raises(ConfigError) as info:
        _config(candidates=1, seed_rules=["sgd", "nesterov"]).validate()
    assert "unknown rule 'nesterov'" in str(info.value) and "sign_sgd" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        check_seed_rules(parse_seed_rules(" , "), "scalar")


def test_seeds_option_on_the_command_line(tmp_path):
    env = dict(os.environ, SYMDISC_HOME=str(tmp_path))
    for command in (["evolve", "--candidates", "1"], ["compare", "--proposers", "random", "-e", "1"]):
        result = subprocess.run([sys.executable, "-m", "symdisc.cli.app", *command, "--seeds", "sgd,adamw9"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("symdisc: error: --seeds: unknown rule 'adamw9'")


def test_the_default_proposer_is_mutate_and_old_runs_keep_the_model():
    assert EvolveConfig().proposer == "mutate"
    # a run stored before the proposer was part of the config was the model's
    assert EvolveConfig.from_dict({"memory": "scalar"}).proposer == "llm"
    assert EvolveConfig.from_dict({"proposer": "hybrid"}).proposer == "hybrid"


@pytest.mark.parametrize("args, named", [(["--model", "qwen2.5-coder-0.5b"], "--model"),
                                         (["-p", "genome", "--api-base", "http://localhost:1/v1"], "--api-base")])
def test_a_model_named_for_a_proposer_without_one_is_refused_in_one_line(tmp_path, args, named):
    home = tmp_path / "home"
    result = _cli("evolve", *args, "-n", "1", env=dict(os.environ, SYMDISC_HOME=str(home)), timeout=60)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and named in lines[0] and "--proposer hybrid" in lines[0], result.stderr
    assert not (home / "symdisc.db").exists()  # refused before a run was created
