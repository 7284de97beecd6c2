"""Search strategies (genome GA, TPE, random), the held-out funnel, compare and simplify."""

import json
import random

import pytest

from symdisc import data
from symdisc.search.compare import at_fraction, best_so_far, run_compare
from symdisc.config import EvolveConfig, ProxyConfig
from symdisc.contract import BUFFERS, SCALAR
from symdisc.search.loop import Evolution
from symdisc.search.funnel import funnel_report, spearman
from symdisc.judge.gate import check_code
from symdisc.search.genome import (SCALAR_TERMS, Genome, crossover, evo_optimizer_genome, mutate, random_genome,
                            to_source)
from symdisc.search.proposers import make_proposer
from symdisc.search.simplify import _rounder, simplify_code, variants
from symdisc.store import Store

FAST = ProxyConfig(seeds=2, steps=30)
HAVE_FMNIST = data.locate("fashion-mnist") is not None


@pytest.mark.parametrize("memory", [SCALAR, BUFFERS])
def test_every_genome_compiles_to_a_candidate_the_gate_accepts(memory):
    rng = random.Random(0)
    for _ in range(200):
        g = random_genome(rng, memory)
        if rng.random() < 0.5:
            g = mutate(crossover(g, random_genome(rng, memory), rng), rng, 0.5, memory)
        result = check_code(to_source(g), memory)
        assert result.verdict.ok, (result.verdict.one_line(), to_source(g))
        if memory == SCALAR:
            assert set(g.terms) <= set(SCALAR_TERMS)


def test_genome_variation_keeps_the_genome_valid():
    rng = random.Random(1)
    a, b = random_genome(rng, BUFFERS), random_genome(rng, BUFFERS)
    for _ in range(100):
        child = mutate(crossover(a, b, rng), rng, 0.8, BUFFERS)
        assert 1 <= len(child.terms) <= 4 and len(child.terms) == len(child.alphas)
        assert 0.5 <= child.beta1 <= 0.99 and -10 <= child.eps_log10 <= -4
        a, b = b, child
    assert Genome.from_dict(json.loads(json.dumps(a.as_dict()))) == a


def test_evo_optimizer_genome_in_contract_form():
    source = to_source(evo_optimizer_genome())
    assert check_code(source, BUFFERS).verdict.ok
    assert not check_code(source, SCALAR).verdict.ok  # ADAM_TERM needs per-element buffers
    assert "torch.sign(g)" in source and "min(1.0, t / 100)" in source and "math.cos" in source


@pytest.mark.parametrize("name", ["genome", "random", "tpe"])
def test_genome_proposers_run_through_the_same_loop(home, gate, sandbox, name):
    store = Store()
    config = EvolveConfig(proposer=name, candidates=14, proxy=FAST, funnel=False)
    evo = Evolution.start(store, config, make_proposer(name), gate, sandbox)
    summary = evo.run()
    rows = [r for r in store.candidates(evo.run_id) if r["origin"] == name]
    assert len(rows) == 14 and summary["candidates"] == 14
    assert all(json.loads(r["genome_json"])["genome"]["terms"] for r in rows)
    assert sum(r["status"] == "evaluated" for r in rows) >= 7
    if name == "tpe":
        import optuna

        study = optuna.load_study(study_name=f"symdisc-{evo.run_id}", storage=f"sqlite:///{store.path}")
        assert len(study.trials) == 14
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        told = {json.loads(r["genome_json"])["trial"]: r for r in rows}
        for trial in study.trials:
            row = told[trial.number]
            # the run's own order: fidelity reached + the score there (store.rank_value)
            from symdisc.store import rank_value

            assert trial.value == pytest.approx(rank_value(row) if row["fitness"] is not None else 0.0)


def test_tpe_models_after_a_third_of_a_small_budget(home, monkeypatch):
    # Optuna's default of 10 random start-up trials would leave `compare -e 20` random for half
    # its budget; the proposer sizes the start-up to the run's budget, as `bench --tune` does.
    import optuna

    from symdisc.search.proposers.tpe import TPEProposer, startup_trials

    seen = []
    real = optuna.samplers.TPESampler
    monkeypatch.setattr(optuna.samplers, "TPESampler", lambda **kw: seen.append(kw) or real(**kw))

    class Run:  # the little of an Evolution that start() reads
        config = EvolveConfig(proposer="tpe", candidates=None, evaluations=20)
        store = Store()
        run_id = "tpe-startup"

    TPEProposer().start(Run)
    assert seen[-1]["n_startup_trials"] == startup_trials(20) == 6
    assert startup_trials(6) == 3 and startup_trials(300) == 10


def test_tpe_run_resumes_its_study(home, gate, sandbox):
    import optuna

    store = Store()
    first = Evolution.start(store, EvolveConfig(proposer="tpe", candidates=5, proxy=FAST, funnel=False),
                            make_proposer("tpe"), gate, sandbox)
    first.run()
    resumed = Evolution.resume(store, first.run_id, make_proposer("tpe"), gate, sandbox, overrides={"candidates": 9})
    resumed.run()
    study = optuna.load_study(study_name=f"symdisc-{first.run_id}", storage=f"sqlite:///{store.path}")
    assert len(study.trials) == 9
    assert len([r for r in store.candidates(first.run_id) if r["origin"] == "tpe"]) == 9


def test_spearman_and_funnel_report():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2], [1, 2]) is None
    rows = [dict(id=i, fitness=f, heldout=h, status="evaluated") for i, (f, h) in
            enumerate([(0.6, 0.70), (0.7, 0.72), (0.8, 0.71), (0.9, None)])]
    report = funnel_report(rows)
    assert report["with_heldout"] == 3 and report["proxy_best_id"] == 3 and report["heldout_best_id"] == 1
    assert report["proxy_best_is_heldout_best"] is False


@pytest.fixture(scope="module")
def heldout_sandbox():
    if not HAVE_FMNIST:
        pytest.skip("Fashion-MNIST is not installed (make install puts Debian's dataset-fashion-mnist)")
    from symdisc.judge.sandbox import Sandbox

    with Sandbox(timeout_s=30, heldout=True) as sb:
        yield sb


def test_cascade_promotes_within_margin_and_ranks_by_highest_fidelity(home, gate, heldout_sandbox):
    from symdisc.config import CascadeConfig
    from symdisc.store import FIDELITY, best_key

    store = Store()
    cascade = CascadeConfig()
    evo = Evolution.start(store, EvolveConfig(proposer="random", candidates=8, proxy=FAST, seed=3, cascade=cascade),
                          make_proposer("random"), gate, heldout_sandbox)
    evo.run()
    rows = store.candidates(evo.run_id)
    seeds = [r for r in rows if r["origin"] == "seed"]
    # baselines always go through every stage
    assert all(r["heldout"] is not None and r["fidelity"] == FIDELITY["long"] for r in seeds)
    best_proxy = max(r["fitness"] for r in seeds)
    best_heldout = max(r["heldout"] for r in seeds)
    for r in rows:
        if r["origin"] != "random" or r["status"] != "evaluated":
            continue
        promoted = r["fitness"] >= best_proxy - cascade.proxy_margin
        assert (r["heldout"] is not None) == promoted, r
        if promoted:
            evals = store.evaluations(r["id"])
            assert [e["seed"] for e in evals if e["stage"] == "heldout" and e["seed"]] == [7000, 7001]
            assert (r["fidelity"] == FIDELITY["long"]) == (r["heldout"] >= best_heldout - cascade.heldout_margin)
            best_heldout = max(best_heldout, r["heldout"])
        else:
            assert r["fidelity"] == FIDELITY["proxy"]
            assert r["rank_score"] == pytest.approx(cascade.combine({"proxy": r["fitness"]})[0])
        best_proxy = max(best_proxy, r["fitness"])
        reached = {"proxy": r["fitness"], "heldout": r["heldout"]}
        if r["fidelity"] < 2:
            reached.pop("heldout")
        if r["fidelity"] < 3:
            assert r["rank_score"] == pytest.approx(cascade.combine(reached)[0])
            assert r["rank_band"] == pytest.approx(cascade.combine(reached)[1])
    board = store.leaderboard(evo.run_id, 100)
    assert [r["id"] for r in board] == [r["id"] for r in sorted(board, key=best_key)]
    summary = store.get_run(evo.run_id)["summary"]
    if data.locate("mnist") is not None:  # the audit task: the run's top few, reported, never selected on
        audit = summary["audit"]
        assert audit["n"] == min(cascade.audit_top, len(board))
        assert all(store.get_candidate(i)["audit"] is not None for i in audit["ids"])


def test_simplify_removes_dead_code_and_rounds_constants(gate, heldout_sandbox):
    bloated = ("def update(grad, param, state, lr, t):\n    unused = grad * 2.0\n    s = torch.sign(grad)\n"
               "    return lr * 1.0013 * s\n")
    descriptions = [d for d, _ in variants(bloated)]
    assert any(d.startswith("drop line 2") for d in descriptions) and any("1.0013 -> 1.0" in d for d in descriptions)
    guarded = "def update(grad, param, state, lr, t):\n    return lr * grad / (torch.norm(grad) + 1e-08)\n"
    rounded = [d for d, _ in variants(guarded) if d.startswith("constant 1e-08")]
    assert rounded == ["constant 1e-08 -> 0.0 (line 2)"]  # never 1.0: eight decades away is another rule
    negative = "def update(grad, param, state, lr, t):\n    return lr * (grad - 4.775 * param)\n"
    assert [d for d, _ in variants(negative) if d.startswith("constant")] == [
        "constant 4.775 -> 5.0 (line 2)", "constant 4.775 -> 1.0 (line 2)", "constant 4.775 -> 0.0 (line 2)"]
    assert [_rounder(v) for v in (-4.775, -0.05)] == [[-5.0, -1.0, 0.0], [0.0]]  # 1 of its sign, within a decade

    def score(code):
        gated = gate.check(code, SCALAR)
        if not gated.verdict.ok:
            return None
        answer = heldout_sandbox.evaluate(gated.normalized, SCALAR, stages=("probe", "proxy", "heldout"),
                                          proxy=FAST.__dict__)
        return answer if answer.get("ok") else None

    result = simplify_code(bloated, score)
    assert "unused" not in result["code"] and "1.0013" not in result["code"]
    assert result["size_after"] < result["size_before"]
    assert result["answer"]["heldout"]["fitness"] >= result["original"]["heldout"]["fitness"] - result["band"]


def test_compare_gives_every_strategy_the_same_budget(home, gate, sandbox):
    store = Store()
    report = run_compare(store, ["random", "genome"], evaluations=6, repeats=2, memory=SCALAR,
                         make_proposer=make_proposer, gate=gate, sandbox=sandbox, proxy=FAST, funnel=False)
    assert set(report["table"]) == {"random", "genome"}
    for name, runs in report["results"].items():
        assert len(runs) == 2
        for r in runs:
            assert store.evaluated_count(r["run_id"]) == 6
            assert store.get_run(r["run_id"])["parent_run"] == report["id"]
            assert len(r["curve"]) == 6
            proposed = [c["fitness"] for c in store.candidates(r["run_id"], ["evaluated", "duplicate"])
                        if c["origin"] != "seed" and c["fitness"] is not None]
            assert r["curve"][-1] == max(proposed, default=0.0)  # the curve ends at the strategy's own best
    assert store.get_run(report["id"])["kind"] == "compare"
    row = report["table"]["random"]
    finals = [r["curve"][-1] for r in report["results"]["random"]]
    assert row["100%"]["mean"] == pytest.approx(sum(finals) / len(finals))


def test_compare_with_a_wall_clock_budget_and_resume(home, gate, sandbox):
    from symdisc.search.compare import at_time

    store = Store()
    minutes = 0.05  # 3 s per strategy
    report = run_compare(store, ["random", "genome"], evaluations=None, minutes=minutes, repeats=1, memory=SCALAR,
                         make_proposer=make_proposer, gate=gate, sandbox=sandbox, proxy=FAST, funnel=False)
    assert report["minutes"] == minutes and report["evaluations"] is None
    for name, runs in report["results"].items():
        (r,) = runs
        run = store.get_run(r["run_id"])
        assert run["config"]["minutes"] == minutes and run["config"]["candidates"] is None
        # the run stopped on time: after its budget, within one candidate's evaluation
        assert minutes * 60 <= run["summary"]["elapsed_s"] < minutes * 60 + 10
        assert r["evaluated"] >= 1 and r["best"] is not None
        assert all(t <= run["summary"]["elapsed_s"] + 1 for t, _ in r["timed"])
        assert report["table"][name]["100%"]["mean"] == pytest.approx(at_time(r["timed"], minutes * 60, 1.0))
    # a comparison whose second strategy was stopped: resume keeps the finished run, continues the other
    stopped = report["results"]["genome"][0]["run_id"]
    store.update_run(stopped, status="interrupted")
    store.update_run(report["id"], status="interrupted")
    before = store.evaluated_count(stopped)
    again = run_compare(store, [], evaluations=None, repeats=0, memory=SCALAR, make_proposer=make_proposer,
                        gate=gate, sandbox=sandbox, resume=report["id"])
    assert again["id"] == report["id"]
    assert [r["run_id"] for r in again["results"]["random"]] == [report["results"]["random"][0]["run_id"]]
    assert [r["run_id"] for r in again["results"]["genome"]] == [stopped]
    assert store.get_run(stopped)["status"] == "finished"
    assert store.evaluated_count(report["results"]["random"][0]["run_id"]) == report["results"]["random"][0]["evaluated"]
    assert store.evaluated_count(stopped) >= before


def test_compare_wants_exactly_one_budget(home, gate, sandbox):
    from symdisc.errors import UsageError

    with pytest.raises(UsageError):
        run_compare(Store(), ["random"], evaluations=5, minutes=1.0, repeats=1, memory=SCALAR,
                    make_proposer=make_proposer, gate=gate, sandbox=sandbox, proxy=FAST, funnel=False)


def test_best_so_far_counts_sandbox_evaluations_only():
    rows = [dict(origin="seed", eval_ms=1, fitness=0.9, status="evaluated"),
            dict(origin="llm", eval_ms=None, fitness=None, status="rejected"),
            dict(origin="llm", eval_ms=1, fitness=0.5, status="evaluated"),
            dict(origin="llm", eval_ms=1, fitness=None, status="failed"),
            dict(origin="llm", eval_ms=1, fitness=0.6, status="evaluated")]
    curve = best_so_far(rows)
    assert curve == [0.5, 0.5, 0.6]
    assert at_fraction(curve, 3, 0.10) == 0.5 and at_fraction(curve, 3, 1.0) == 0.6


def test_compare_starts_every_repeat_from_the_chosen_seeds(home, gate, sandbox):
    store = Store()
    report = run_compare(store, ["random"], evaluations=2, repeats=1, memory=SCALAR, make_proposer=make_proposer,
                         gate=gate, sandbox=sandbox, proxy=FAST, funnel=False, seed_rules=["sign_sgd"])
    (run,) = report["results"]["random"]
    assert [c["name"] for c in store.candidates(run["run_id"]) if c["origin"] == "seed"] == ["sign_sgd"]
    assert store.get_run(report["id"])["config"]["seed_rules"] == ["sign_sgd"]
    assert store.get_run(run["run_id"])["config"]["seed_rules"] == ["sign_sgd"]
