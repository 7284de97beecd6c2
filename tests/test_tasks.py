"""Task files: the contract, its one-line errors, the trust boundary, and every command that takes --task.

``tests/data/stranger_regression.py`` was written from the contract alone (a tiny regression MLP); it
must run unchanged under evolve, check --score, bench and task check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from symdisc import rules
from symdisc.cli.app import app
from symdisc.contract import REASONS, SCALAR
from symdisc.errors import UsageError
from symdisc.judge.sandbox import Sandbox
from symdisc.store import Store
from symdisc.tasks import builtin_names, load_task, norm_of, stage_spec, standardised, worker_specs

STRANGER = Path(__file__).parent / "data" / "stranger_regression.py"
SGD = rules.source("sgd")
TANH = "def update(grad, param, state, lr, t):\n    return lr * torch.tanh(grad)\n"

GOOD_HEADER = "import torch\n\n"
GOOD_TRAIN = ("def train(make_optimizer, data, seed, lr, steps):\n"
              "    torch.manual_seed(seed)\n"
              "    w = torch.nn.Parameter(torch.ones(3))\n"
              "    opt = make_optimizer([w], lr)\n"
              "    for _ in range(steps):\n"
              "        opt.zero_grad()\n"
              "        loss = ((w - data) ** 2).sum()\n"
              "        loss.backward()\n"
              "        opt.step()\n"
              "    return {BODY}\n")


def _task_file(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return str(path)


def _quadratic(tmp_path, name="quad", score="-float(loss)", prepare="def prepare(seed):\n    return torch.zeros(3)\n\n"):
    return _task_file(tmp_path, name, GOOD_HEADER + prepare + GOOD_TRAIN.replace("{BODY}", score))


# -- the contract and its errors ------------------------------------------------------------------
@pytest.mark.parametrize("text, words", [
    ("import torch\n\ndef prepare(seed):\n    return 1\n", "defines no train(make_optimizer, data, seed, lr, steps)"),
    ("def train(make_optimizer, data, seed, lr, steps)\n    return 1.0\n", "line 1: syntax error"),
    ("def train(make_optimizer, data, seed):\n    return 1.0\n", "train must be train(make_optimizer, data, seed, lr, steps)"),
    ("def prepare():\n    return 1\n\ndef train(a, b, c, d, e):\n    return 1.0\n", "prepare must be prepare(seed)"),
    ("raise RuntimeError('no GPU here')\n", "importing it raised RuntimeError: no GPU here"),
    ("STEPS = 'many'\n\ndef train(a, b, c, d, e):\n    return 1.0\n", "STEPS must be a positive int"),
    ("train = 3\n", "train must be"),
])
def test_a_broken_task_file_is_one_usage_error(tmp_path, text, words):
    path = _task_file(tmp_path, "broken", text)
    with pytest.raises(UsageError) as err:
        load_task(path)
    assert words in str(err.value) and "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["check", "-", "--score", "--task", path], input=SGD)
    assert result.exit_code != 0 and isinstance(result.exception, UsageError)


def test_names_steps_and_builtins(tmp_path):
    stranger = load_task(str(STRANGER))
    assert (stranger.name, stranger.steps, stranger.builtin) == ("stranger-regression", 120, False)
    assert {"fmnist-noisy", "mnist-noisy", "lm-chars"} <= set(builtin_names())
    for name in builtin_names():
        task = load_task(name)
        assert task.builtin and task.name == name and task.steps >= 1
    with pytest.raises(UsageError, match="unknown task"):
        load_task("no-such-task")
    with pytest.raises(UsageError, match="no such task file"):
        load_task(str(tmp_path / "missing.py"))


def test_standardisation_is_against_the_seed_rules_scores():
    centre, scale = norm_of([0.5, 0.7, 0.6])
    assert centre == pytest.approx(0.6) and scale == pytest.approx(0.1)
    assert norm_of([2.0, 2.0])[1] == pytest.approx(2e-3)  # tied seeds: the floor, not a division by 0
    norms = {"a": (0.6, 0.1), "b": (-3.0, 0.5)}
    assert standardised({"a": 0.8, "b": -3.5}, norms) == pytest.approx((2.0 - 1.0) / 2)
    assert standardised({"a": 0.8, "c": 1.0}, norms) is None


def test_template_is_a_valid_task(tmp_path):
    result = CliRunner().invoke(app, ["task", "new", "my-task", "--out", str(tmp_path / "my_task.py"), "--json"])
    assert result.exit_code == 0, result.output
    task = load_task(json.loads(result.stdout)["path"])
    assert task.name == "my-task" and task.steps == 300
    again = CliRunner().invoke(app, ["task", "new", "my-task", "--out", str(tmp_path / "my_task.py")])
    assert isinstance(again.exception, UsageError) and "exists" in str(again.exception)


# -- task check ------------------------------------------------------------------------------------
def test_task_check_accepts_the_strangers_task():
    result = CliRunner().invoke(app, ["task", "check", str(STRANGER), "--steps", "5", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] and out["deterministic"] is True and out["distinguishes_optimizers"] is True
    assert [(r["optimizer"], r["lr"]) for r in out["runs"]] == [("sgd", 1e-3), ("sgd", 1e-1), ("adam", 1e-3),
                                                               ("adam", 1e-1), ("sgd", 1e-3)]
    assert all(r["ok"] and r["s_per_step"] > 0 for r in out["runs"])


def test_task_check_flags_a_task_that_scores_every_optimizer_the_same(tmp_path):
    path = _quadratic(tmp_path, "constant", score="0.25")
    result = CliRunner().invoke(app, ["task", "check", path, "--steps", "3", "--json"])
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["distinguishes_optimizers"] is False and out["deterministic"] is True
    assert any("cannot tell optimizers apart" in p for p in out["problems"])


def test_task_check_flags_a_task_that_is_not_seeded(tmp_path):
    path = _quadratic(tmp_path, "unseeded", score="-float(loss) + float(torch.rand(1, generator=torch.Generator().manual_seed(int.from_bytes(__import__('os').urandom(4), 'little'))))")
    out = json.loads(CliRunner().invoke(app, ["task", "check", path, "--steps", "3", "--json"]).stdout)
    assert out["deterministic"] is False and not out["ok"]


# -- the trust boundary ------------------------------------------------------------------------------
def test_files_are_readable_in_prepare_and_not_in_train(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("3.0")
    reads_in_prepare = _quadratic(tmp_path, "reads_prepare",
                                  prepare=f"def prepare(seed):\n    return torch.full((3,), float(open({str(secret)!r}).read()))\n\n")
    writes_in_train = _quadratic(tmp_path, "writes_train",
                                 score=f"float(open({str(tmp_path / 'out.txt')!r}, 'w').write('x'))")
    tasks = [load_task(p).as_dict() for p in (reads_in_prepare, writes_in_train)]
    with Sandbox(timeout_s=60, tasks=worker_specs(tasks)) as sandbox:
        ok = sandbox.train_task(SGD, SCALAR, "reads-prepare", 1000, 0.1, 3)
        assert ok["ok"] and ok["result"]["score"] < 0, ok  # trained towards the data read in prepare
        # the one-step warm-up before the lock-down could still write; after it, train cannot (file-size
        # limit 0, an unprivileged uid): the task's own OSError is its stage's verdict
        bad = sandbox.train_task(SGD, SCALAR, "writes-train", 1000, 0.1, 3)
        assert not bad["ok"] and bad["reason"] == "task_error", bad


def test_stage_failures_are_verdicts_with_reason_codes(tmp_path):
    raises = _quadratic(tmp_path, "raises", score="1.0 / 0")
    nan = _quadratic(tmp_path, "nan_score", score="float('nan')")
    # the warm-up before the lock-down trains one step; longer runs never end
    slow = _quadratic(tmp_path, "slow", score="float(loss) if steps == 1 else len([0 for _ in iter(int, 1)])")
    tasks = [load_task(p).as_dict() for p in (raises, nan, slow)]
    assert {"task_error", "diverged", "timeout"} <= set(REASONS)
    with Sandbox(timeout_s=20, tasks=worker_specs(tasks)) as sandbox:
        def stage(task, **kw):
            spec = stage_spec([task], "heldout")
            spec["tasks"][0].update(steps=3, lrs=[0.01, 0.1])
            return sandbox.evaluate(SGD, SCALAR, stages=("heldout",), cascade={"heldout": spec}, **kw)

        got = stage(tasks[0])
        # the warm-up already raised: the task is kept broken, with its message, and the worker serves on
        assert (got["ok"], got["stage"], got["reason"]) == (False, "heldout", "task_error")
        assert "ZeroDivisionError" in got["message"]
        got = stage(tasks[1])
        assert (got["ok"], got["reason"]) == (False, "diverged") and "no finite score" in got["message"]
        got = stage(tasks[2], timeout_s=4)
        assert (got["ok"], got["reason"]) == (False, "timeout")
        assert sandbox.evaluate(SGD, SCALAR, stages=("probe", "proxy"), proxy={"seeds": 1, "steps": 5})["ok"]


# -- hostile candidates with a task file in place of the built-in stages ------------------------
SEMANTIC = {"ignores_lr", "no_descent", "ignores_grad", "unstable", "superlinear", "mutation"}
# What the cost probe and the shape caps refuse is harmful only at scale: on a task whose tensors are
# small, an n-squared product of a small gradient stays inside the worker's limits, so the test asks
# only that it be contained (no file, no connection, the worker still serving).
COST = {"over_budget", "too_large"}
# The optimizer calls the rule under torch.no_grad, where a tensor made with requires_grad=True builds
# no graph: what these cases attack (a growing autograd graph) cannot happen on a task stage.
NO_GRAPH = {"buffers-autograd-graph", "step-requires-grad"}


@pytest.fixture(scope="module")
def task_sandbox():
    task = load_task(str(STRANGER)).as_dict()
    with Sandbox(timeout_s=3.0, tasks=worker_specs([task])) as sb:
        yield sb, task


def _hostile_cases():
    from tests.test_hostile import CASES

    return [c for c in CASES if c.layer != "gate"]


@pytest.mark.parametrize("case", _hostile_cases(), ids=[c.id for c in _hostile_cases()])
def test_hostile_candidates_are_contained_on_a_task_stage(case, task_sandbox):
    import socket

    from tests.test_hostile import CANARY, assert_no_connection, fill
    from symdisc.judge.gate import check_reply

    sandbox, task = task_sandbox
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.setblocking(False)
    CANARY.unlink(missing_ok=True)
    try:
        gated = check_reply(fill(case.code, srv.getsockname()[1]), case.memory)
        assert gated.verdict.ok, gated.verdict.one_line()
        spec = stage_spec([task], "heldout")
        spec["tasks"][0].update(steps=40, lrs=[0.01])  # past the 16 state keys a step-keyed rule fills
        # straight to the task stage, without the probes that would stop most of these first
        answer = sandbox.evaluate(gated.normalized, case.memory, stages=("heldout",), cascade={"heldout": spec})
        if not set(case.reasons) <= SEMANTIC | COST and case.id not in NO_GRAPH:
            assert not answer["ok"], f"{case.id} trained on the task: {answer}"
            assert answer["reason"] in set(case.reasons) | {"diverged", "runtime", "timeout", "cpu_time", "memory",
                                                             "bad_output", "state_rule"}, answer
        assert not CANARY.exists(), f"{case.id} wrote {CANARY}"
        assert_no_connection(srv)
        after = sandbox.evaluate(SGD, SCALAR, stages=("heldout",), cascade={"heldout": spec})
        assert after["ok"] and after["heldout"]["tasks"][task["name"]]["fitness"] < 0, after
    finally:
        srv.close()
        CANARY.unlink(missing_ok=True)


# -- the stranger's task under every command -------------------------------------------------------
def test_evolve_selects_on_the_strangers_task(home, tmp_path):
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([TANH, "import os\ndef update(grad, param, state, lr, t):\n    return lr * grad\n"]))
    result = CliRunner().invoke(app, ["evolve", "--proposer", "llm", "--task", str(STRANGER), "--fake-replies", str(replies), "-n", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    with Store() as store:
        run = store.get_run(summary["id"])
        rows = store.candidates(run["id"])
        config = run["config"]
        assert [t["name"] for t in config["tasks"]] == ["stranger-regression"]
        assert config["tasks"][0]["path"] == str(STRANGER.resolve())
        norms = config["task_norms"]
        assert set(norms) == {"heldout", "long"} and "stranger-regression" in norms["heldout"]
        seeds = [r for r in rows if r["origin"] == "seed"]
        assert all(r["fidelity"] == 3 for r in seeds)  # every seed rule reached the task's long stage
        # the seeds' held-out scores are standardized against themselves: their median is 0
        assert sorted(r["heldout"] for r in seeds)[1] == pytest.approx(0.0, abs=1e-9)
        evs = [e for e in store.evaluations(seeds[0]["id"]) if e["stage"] == "heldout"]
        assert evs[0]["detail"]["tasks"]["stranger-regression"]["steps"] == 30  # a quarter of STEPS
        long = [e for e in store.evaluations(seeds[0]["id"]) if e["stage"] == "long"]
        assert long[0]["detail"]["tasks"]["stranger-regression"]["steps"] == 120
        assert [r["status"] for r in rows if r["origin"] != "seed"] == ["evaluated", "rejected"]
    shown = CliRunner().invoke(app, ["runs", "show", summary["id"]])
    assert "selected on: stranger-regression" in shown.stdout


def test_check_score_on_the_strangers_task():
    result = CliRunner().invoke(app, ["check", "-", "--score", "--task", str(STRANGER), "--json"], input=TANH)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert {"proxy", "heldout", "long"} <= set(out["stages"])
    for stage, steps in (("heldout", 30), ("long", 120)):
        task = out["stages"][stage]["tasks"]["stranger-regression"]
        assert task["steps"] == steps and len(task["per_seed"]) == 2 and task["fitness"] < 0


def test_bench_reports_every_number_the_task_returns(home, tmp_path):
    rule = tmp_path / "tanh_rule.py"
    rule.write_text(TANH)
    lm = tmp_path / "lm_small.py"
    lm.write_text(Path(load_task("lm-chars").path).read_text().replace("STEPS = 600", "STEPS = 20"))
    result = CliRunner().invoke(app, ["bench", str(rule), "--against", "sgd", "--task", str(STRANGER), "--task", str(lm),
                                      "--seeds", "2", "--lr", "tanh_rule=0.05", "--lr", "sgd=0.1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report["tasks"]) == {"stranger-regression", "lm-chars"}
    assert "sandbox worker" in report["execution"]["tanh_rule"]
    for name in ("tanh_rule", "sgd"):
        row = report["tasks"]["stranger-regression"]["optimizers"][name]
        assert [r["seed"] for r in row["runs"]] == [0, 1] and row["numbers"]["score"]["mean"] < 0
        lm_row = report["tasks"]["lm-chars"]["optimizers"][name]
        assert {"score", "val_bits_per_char", "train_loss", "seconds"} <= set(lm_row["numbers"])
        assert lm_row["numbers"]["score"]["mean"] == pytest.approx(-lm_row["numbers"]["val_bits_per_char"]["mean"])


def test_bench_tunes_every_optimizer_on_its_own_seeds_and_pairs_the_scores(home, tmp_path):
    rule = tmp_path / "tanh_rule.py"
    rule.write_text(TANH)
    args = ["bench", str(rule), "--against", "sgd,adam", "--task", str(STRANGER), "--seeds", "3", "--steps", "40",
            "--lr-grid", "0.001,0.01,0.1", "--max-widen", "1", "--lr", "adam=0.02", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    task = report["tasks"]["stranger-regression"]
    rows = task["optimizers"]
    for name in ("tanh_rule", "sgd"):  # tuned: the rule in the sandbox worker, sgd in this process
        tuning = rows[name]["tuning"]
        scores = {lr: s for lr, _, s in tuning["scores"]}
        assert {0.001, 0.01, 0.1} <= set(scores) and len(scores) <= 4
        assert rows[name]["lr"] == max(scores, key=lambda lr: scores[lr] if scores[lr] is not None else -1e9)
    assert "tuning" not in rows["adam"] and rows["adam"]["lr"] == 0.02  # --lr fixes it
    with Store() as store:
        stored = store.bench_results(report["id"])
    assert {r["seed"] for r in stored if r["phase"] == "tune"} == {1000}
    assert {r["seed"] for r in stored if r["phase"] == "final"} == {0, 1, 2}
    pairs = {(p["a"], p["b"]): p for p in task["pairs"]}
    assert set(pairs) == {("tanh_rule", "sgd"), ("tanh_rule", "adam"), ("sgd", "adam")}
    score = {name: {r["seed"]: r["score"] for r in rows[name]["runs"]} for name in rows}
    expected = sum(score["tanh_rule"][s] - score["sgd"][s] for s in range(3)) / 3
    pair = pairs[("tanh_rule", "sgd")]
    assert pair["seeds"] == [0, 1, 2] and pair["mean_diff"] == pytest.approx(expected)
    assert pair["ci_low"] <= pair["mean_diff"] <= pair["ci_high"] and pair["p_holm"] >= pair["p_t"]
    shown = CliRunner().invoke(app, args[:-1])
    assert "paired by seed" in shown.stdout and "tanh_rule - sgd" in shown.stdout


def test_bench_on_a_task_file_refuses_what_it_cannot_tune(home):
    for extra, says in ((["--weight-decay", "0.1"], "--weight-decay"), (["--tune-epochs", "1"], "--tune-steps")):
        result = CliRunner().invoke(app, ["bench", "sgd", "--task", str(STRANGER), *extra])
        assert isinstance(result.exception, UsageError) and says in str(result.exception)


def test_calibrate_on_the_strangers_task(tmp_path):
    result = CliRunner().invoke(app, ["calibrate", "--task", str(STRANGER), "--rules", "sgd,sign_sgd,normalized_sgd",
                                      "--dir", str(tmp_path / "cal"), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert set(out["fidelities"]) == {"proxy", "stranger-regression|heldout", "stranger-regression|long"}
    assert set(out["truth"]["stranger-regression"]["scores"]) == {"sgd", "sign_sgd", "normalized_sgd"}
    assert all(v < 0 for v in out["truth"]["stranger-regression"]["scores"].values())
    journal = (tmp_path / "cal" / "journal.jsonl").read_text().splitlines()
    assert len(journal) == 3 * 4  # proxy, quarter, full, truth per rule; a rerun trains nothing new
    again = CliRunner().invoke(app, ["calibrate", "--task", str(STRANGER), "--rules", "sgd,sign_sgd,normalized_sgd",
                                     "--dir", str(tmp_path / "cal"), "--json"])
    assert again.exit_code == 0 and len((tmp_path / "cal" / "journal.jsonl").read_text().splitlines()) == 12


def test_a_task_that_raises_for_some_candidates_fails_their_stage_not_the_run(home, tmp_path):
    # train raises for any rule that keeps state: robust_zero_state (a seed) and the scripted normalizer
    path = _task_file(tmp_path, "no_state", (STRANGER.read_text() + "\n\n_train = train\n\n\n"
                      "def train(make_optimizer, data, seed, lr, steps):\n"
                      "    def make(params, lr):\n"
                      "        opt = make_optimizer(params, lr)\n"
                      "        make.opts.append(opt)\n"
                      "        return opt\n"
                      "    make.opts = []\n"
                      "    score = _train(make, data, seed, lr, steps)\n"
                      "    if any(s.get('rule') for o in make.opts for s in o.state.values()):\n"
                      "        raise RuntimeError('this task wants stateless rules')\n"
                      "    return score\n"))
    norm = ("def update(grad, param, state, lr, t):\n    n = grad.norm().item()\n"
            "    state['n'] = 0.9 * state.get('n', n) + 0.1 * n\n    return lr * grad / (state['n'] + 1e-8)\n")
    replies = tmp_path / "replies.json"
    replies.write_text(json.dumps([norm]))
    result = CliRunner().invoke(app, ["evolve", "--proposer", "llm", "--task", path, "--fake-replies", str(replies), "-n", "1", "--json"])
    assert result.exit_code == 0, result.output
    with Store() as store:
        rows = {r["name"] or r["origin"]: r for r in store.candidates(json.loads(result.stdout)["id"])}
        assert rows["sgd"]["fidelity"] == 3 and rows["robust_zero_state"]["fidelity"] == 1
        for name in ("robust_zero_state", "llm"):
            assert rows[name]["status"] == "evaluated"
            failed = [e for e in store.evaluations(rows[name]["id"]) if e["stage"] == "heldout"]
            assert [(e["ok"], e["reason"]) for e in failed] == [(0, "task_error")]
            assert "this task wants stateless rules" in failed[0]["message"]
